/*
 * config.c: owns the option table of aegis-bridge: defaults, environment
 * variables, flags (which win), validation of every value with a message
 * naming the option and the value, and the --help text.
 */
#define _GNU_SOURCE
#include "config.h"
#include "buf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "guard.h"

enum config_opt_kind {
    OPT_STR,
    OPT_INT,
    OPT_SIZE,
    OPT_LISTEN,
    OPT_LOGLEVEL,
    OPT_CORS,
    OPT_KV,
    OPT_CONSUMER,
    OPT_FLAG_OFF,
    OPT_HELP,
    OPT_VERSION,
    OPT_AUTH_MODE,
    OPT_JWT_ALG,
    OPT_SQL_FUNC,
    OPT_HOSTS
};

struct config_opt {
    const char *flag;          /* "--heartbeat-seconds" */
    const char *env;           /* NULL: no environment variable */
    enum config_opt_kind kind;
    long min, max;             /* OPT_INT / OPT_SIZE range */
    const char *help;
};

static const struct config_opt config_opts[] = {
    { "--database-url", "DATABASE_URL", OPT_STR, 0, 0,
      "libpq connection string or URI (default: libpq's PG* environment)" },
    { "--listen", "AEGIS_LISTEN", OPT_LISTEN, 0, 0,
      "HOST:PORT to serve HTTP on, HOST an IPv4 address or localhost (default 127.0.0.1:8001)" },
    { "--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", OPT_STR, 0, 0,
      "Kafka brokers host:port[,...] (default: unset, Kafka off)" },
    { "-X", NULL, OPT_KV, 0, 0, "KEY=VALUE librdkafka property, repeatable (as kcat -X)" },
    { "--heartbeat-seconds", "AEGIS_HEARTBEAT_SECONDS", OPT_INT, 1, 3600,
      "seconds between SSE keepalive comments, 1..3600 (default 15)" },
    { "--retry-ms", "AEGIS_RETRY_MS", OPT_INT, 0, 3600000,
      "SSE retry: value sent at stream start, 0..3600000 (default 3000)" },
    { "--cors-origin", "AEGIS_CORS_ORIGINS", OPT_CORS, 0, 0,
      "allowed CORS origin, repeatable; the variable takes a comma list; * allows any (default "
      "none)" },
    { "--max-clients", "AEGIS_MAX_CLIENTS", OPT_INT, 1, 1000000,
      "most concurrent SSE streams, 1..1000000 (default 10000)" },
    { "--client-buffer-bytes", "AEGIS_CLIENT_BUFFER_BYTES", OPT_SIZE, 1024, 1073741824,
      "per-subscriber output bound; a client past it is dropped, 1024..1073741824 (default 262144)" },
    /* hardening: bounds against hostile clients and a slow store */
    { "--max-clients-per-ip", "AEGIS_MAX_CLIENTS_PER_IP", OPT_INT, 1, 1000000,
      "most concurrent SSE streams from one client address, 1..1000000 (default 64); behind a\n"
      "      proxy every client has the proxy's address: limit per client there (X-Forwarded-For is not read)" },
    { "--reserved-fds", "AEGIS_RESERVED_FDS", OPT_INT, 16, 100000,
      "descriptors kept free for PostgreSQL, Kafka and files: connections are capped at the\n"
      "      descriptor limit minus this, 16..100000 (default 64)" },
    { "--header-timeout-seconds", "AEGIS_HEADER_TIMEOUT_SECONDS", OPT_INT, 1, 300,
      "seconds a connection may take to send its request headers, 1..300 (default 10)" },
    { "--idle-heartbeats", "AEGIS_IDLE_HEARTBEATS", OPT_INT, 1, 1000,
      "heartbeat intervals a client may take no byte while data waits before it is dropped, 1..1000 (default 4)" },
    { "--pg-pool-size", "AEGIS_PG_POOL_SIZE", OPT_INT, 1, 64,
      "PostgreSQL connections for replays, run requests and /metrics, 1..64 (default 4)" },
    { "--statement-timeout-ms", "AEGIS_STATEMENT_TIMEOUT_MS", OPT_INT, 1000, 3600000,
      "statement_timeout of the bridge's PostgreSQL sessions, 1000..3600000 (default 30000)" },
    { "--publisher-warn-seconds", "AEGIS_PUBLISHER_WARN_SECONDS", OPT_INT, 1, 86400,
      "warn when a publishing transaction has held every reader back this long, 1..86400 (default 60)" },
    { "--topic-allow", "AEGIS_TOPIC_ALLOW", OPT_STR, 0, 0,
      "comma list of the only topics the drain produces to; events for others are dead-lettered\n"
      "      (default: any topic)" },
    { "--static-dir", "AEGIS_STATIC_DIR", OPT_STR, 0, 0,
      "directory served at / and /static/ for the dashboard (default: none)" },
    { "--tls-cert", "AEGIS_TLS_CERT", OPT_STR, 0, 0,
      "PEM certificate (chain) file: serve HTTPS with ALPN h2 + http/1.1; needs --tls-key" },
    { "--tls-key", "AEGIS_TLS_KEY", OPT_STR, 0, 0,
      "PEM private key of --tls-cert (SIGHUP reloads both files)" },
    { "--no-drain", NULL, OPT_FLAG_OFF, 0, 0,
      "do not run the PostgreSQL -> Kafka drain in this process" },
    { "--drain-batch", "AEGIS_DRAIN_BATCH", OPT_INT, 1, 100000,
      "events read per drain batch, 1..100000 (default 5000)" },
    { "--flush-timeout-ms", "AEGIS_FLUSH_TIMEOUT_MS", OPT_INT, 0, 600000,
      "Kafka flush deadline at shutdown, 0..600000 (default 10000)" },
    { "--log-level", "AEGIS_LOG_LEVEL", OPT_LOGLEVEL, 0, 0,
      "debug|info|warn|error (default info)" },
    { "--consumer", "AEGIS_CONSUMERS", OPT_CONSUMER, 0, 0,
      "'group=G topics=t1,t2 handler=schema.func [batch=100] [poll_timeout=1.0]', repeatable;\n"
      "      the variable takes several separated by ';'" },
    { "--auth-jwt-key", "AEGIS_JWT_KEY_FILE", OPT_STR, 0, 0,
      "file with the token key: the HS* secret (>= 32 bytes) or an RS256/ES256 PEM public key;\n"
      "      streams, runs and /metrics then need a token (default: none, loopback only)" },
    { "--auth-jwt-alg", "AEGIS_JWT_ALG", OPT_JWT_ALG, 0, 0,
      "the one algorithm tokens may use: HS256|HS384|HS512|RS256|ES256 (default HS256)" },
    { "--auth-jwt-audience", "AEGIS_JWT_AUDIENCE", OPT_STR, 0, 0,
      "when set, a token's aud must be (or contain) this value" },
    { "--auth-jwt-issuer", "AEGIS_JWT_ISSUER", OPT_STR, 0, 0,
      "when set, a token's iss must be this value" },
    { "--auth", "AEGIS_AUTH", OPT_AUTH_MODE, 0, 0,
      "none: serve without authorization even off loopback (logs a warning)" },
    { "--auth-sql-function", "AEGIS_AUTH_SQL_FUNCTION", OPT_SQL_FUNC, 0, 0,
      "[schema.]function(claims jsonb, stream_kind text, stream_id text) RETURNS boolean that\n"
      "      must also allow each stream and run (needs --auth-jwt-key)" },
    { "--allowed-hosts", "AEGIS_ALLOWED_HOSTS", OPT_HOSTS, 0, 0,
      "Host header values accepted, host[:port], repeatable or a comma list (default on loopback:\n"
      "      127.0.0.1:PORT, localhost:PORT, [::1]:PORT; required with --auth-jwt-key elsewhere)" },
    { "--help", NULL, OPT_HELP, 0, 0, "print this help and exit" },
    { "--version", NULL, OPT_VERSION, 0, 0, "print the version and exit" },
};

#define CONFIG_NOPTS (sizeof config_opts / sizeof config_opts[0])


const char *config_log_level_name(enum log_level l)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };

    return (l >= LOG_DEBUG && l <= LOG_ERROR) ? names[l] : "info";
}

static int config_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    const char *p = s;

    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int config_set_str(char **slot, const char *v)
{
    char *copy = strdup(v);

    if (!copy)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

static int config_parse_listen(struct bridge_config *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    struct in_addr a;
    char host[64];
    long port;
    size_t hl;

    if (!colon || colon == v)
        return -1;
    hl = (size_t)(colon - v);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, v, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &a) != 1)
        return -1;
    if (config_parse_long(colon + 1, 1, 65535, &port) < 0)
        return -1;
    if (config_set_str(&cfg->listen_host, strcmp(host, "localhost") ? host : "127.0.0.1") < 0)
        return -1;
    cfg->listen_port = (int)port;
    return 0;
}

static int config_parse_level(const char *v, enum log_level *out)
{
    int i;

    for (i = LOG_DEBUG; i <= LOG_ERROR; i++) {
        if (strcmp(v, config_log_level_name((enum log_level)i)) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

static int config_strv_push(char ***v, size_t *n, const char *s, size_t len)
{
    char **grown = realloc(*v, (*n + 1) * sizeof **v);

    if (!grown)
        return -1;
    *v = grown;
    grown[*n] = strndup(s, len);
    if (!grown[*n])
        return -1;
    (*n)++;
    return 0;
}

static void config_strv_free(char ***v, size_t *n)
{
    size_t i;

    for (i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static int config_origin_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 1 && s[0] == '*')
        return 1;
    if (len < 8 || len > 255 || (strncmp(s, "http://", 7) && strncmp(s, "https://", 8)))
        return 0;
    for (i = 0; i < len; i++) {
        if (!isgraph((unsigned char)s[i]) || s[i] == ',')
            return 0;
    }
    return s[len - 1] != '/';
}

/* one origin (flag) or a comma list (env) */
static int config_add_cors(struct bridge_config *cfg, const char *v, int list)
{
    const char *p = v, *end;
    size_t len;

    do {
        end = list ? strchr(p, ',') : NULL;
        len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (!config_origin_ok(p, len))
            return -1;
        if (config_strv_push(&cfg->cors_origins, &cfg->ncors_origins, p, len) < 0)
            return -1;
        p = end ? end + 1 : NULL;
    } while (p);
    return 0;
}

static int config_add_kv(struct bridge_config *cfg, const char *v)
{
    const char *eq = strchr(v, '=');
    struct config_kv *grown;

    if (!eq || eq == v)
        return -1;
    grown = realloc(cfg->rdkafka_props, (cfg->nrdkafka_props + 1) * sizeof *grown);
    if (!grown)
        return -1;
    cfg->rdkafka_props = grown;
    grown[cfg->nrdkafka_props].key = strndup(v, (size_t)(eq - v));
    grown[cfg->nrdkafka_props].value = strdup(eq + 1);
    cfg->nrdkafka_props++;
    return (grown[cfg->nrdkafka_props - 1].key && grown[cfg->nrdkafka_props - 1].value) ? 0 : -1;
}

static int config_ident_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (i = 0; i < len; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    }
    return 1;
}

static int config_handler_ok(const char *s)
{
    const char *dot = strchr(s, '.');

    return dot && config_ident_ok(s, (size_t)(dot - s)) && config_ident_ok(dot + 1, strlen(dot + 1));
}

static int config_name_ok(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > 249)
        return 0;
    for (i = 0; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || strchr("._-", s[i])))
            return 0;
    }
    return 1;
}

static int config_parse_poll_timeout(const char *v, int *ms)
{
    char *end;
    double d;

    if (!isdigit((unsigned char)v[0]))
        return -1;
    errno = 0;
    d = strtod(v, &end);
    if (errno || *end || d < 0.001 || d > 60.0)
        return -1;
    *ms = (int)(d * 1000.0 + 0.5);
    return 0;
}

static void config_consumer_clear(struct config_consumer *c)
{
    free(c->group);
    config_strv_free(&c->topics, &c->ntopics);
    free(c->handler);
    memset(c, 0, sizeof *c);
}

/* one field "key=value" of a consumer spec; returns an error text or NULL */
static const char *config_consumer_field(struct config_consumer *c, const char *f, size_t len)
{
    const char *eq = memchr(f, '=', len);
    char *val;
    const char *err = NULL;
    long n;

    if (!eq)
        return "field without '='";
    val = strndup(eq + 1, len - (size_t)(eq - f) - 1);
    if (!val)
        return "out of memory";
#define KEY(k) ((size_t)(eq - f) == strlen(k) && strncmp(f, k, strlen(k)) == 0)
    if (KEY("group")) {
        if (c->group || !config_name_ok(val))
            err = "group must be given once, 1..249 of [A-Za-z0-9._-]";
        else
            c->group = val, val = NULL;
    } else if (KEY("topics")) {
        const char *p = val, *comma;
        if (c->topics)
            err = "topics given twice";
        while (!err && p) {
            char *one;
            comma = strchr(p, ',');
            one = strndup(p, comma ? (size_t)(comma - p) : strlen(p));
            if (!one || !config_name_ok(one))
                err = "topics must be a comma list of names of [A-Za-z0-9._-]";
            else if (config_strv_push(&c->topics, &c->ntopics, one, strlen(one)) < 0)
                err = "out of memory";
            free(one);
            p = comma ? comma + 1 : NULL;
        }
    } else if (KEY("handler")) {
        if (c->handler || !config_handler_ok(val))
            err = "handler must be schema.function (SQL identifiers)";
        else
            c->handler = val, val = NULL;
    } else if (KEY("batch")) {
        if (config_parse_long(val, 1, 10000, &n) < 0)
            err = "batch must be an integer from 1 to 10000";
        else
            c->batch = (int)n;
    } else if (KEY("poll_timeout")) {
        if (config_parse_poll_timeout(val, &c->poll_timeout_ms) < 0)
            err = "poll_timeout must be seconds from 0.001 to 60";
    } else {
        err = "unknown key (expected group, topics, handler, batch, poll_timeout)";
    }
#undef KEY
    free(val);
    return err;
}

static const char *config_parse_consumer(struct config_consumer *c, const char *spec, size_t len)
{
    size_t i = 0, start;
    const char *err = NULL;

    memset(c, 0, sizeof *c);
    c->batch = 100;
    c->poll_timeout_ms = 1000;
    while (!err && i < len) {
        while (i < len && isspace((unsigned char)spec[i]))
            i++;
        start = i;
        while (i < len && !isspace((unsigned char)spec[i]))
            i++;
        if (i > start)
            err = config_consumer_field(c, spec + start, i - start);
    }
    if (!err && (!c->group || !c->topics || !c->handler))
        err = "group, topics and handler are required";
    if (err)
        config_consumer_clear(c);
    return err;
}

static int config_add_consumers(struct bridge_config *cfg, const char *v, int list, char **errmsg,
                                const char *optname)
{
    const char *p = v, *end;
    size_t len;
    struct config_consumer one, *grown;
    const char *err;

    do {
        end = list ? strchr(p, ';') : NULL;
        len = end ? (size_t)(end - p) : strlen(p);
        err = config_parse_consumer(&one, p, len);
        if (err)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: %s", v, optname, err);
        grown = realloc(cfg->consumers, (cfg->nconsumers + 1) * sizeof *grown);
        if (!grown) {
            config_consumer_clear(&one);
            return buf_fail(errmsg, -1, "out of memory");
        }
        cfg->consumers = grown;
        grown[cfg->nconsumers++] = one;
        p = end ? end + 1 : NULL;
        while (p && isspace((unsigned char)*p))
            p++;
        if (p && !*p)
            p = NULL;   /* a trailing ';' */
    } while (p);
    return 0;
}

static void config_clear_list(struct bridge_config *cfg, enum config_opt_kind kind)
{
    size_t i;

    if (kind == OPT_CORS) {
        config_strv_free(&cfg->cors_origins, &cfg->ncors_origins);
    } else if (kind == OPT_HOSTS) {
        config_strv_free(&cfg->allowed_hosts, &cfg->nallowed_hosts);
    } else if (kind == OPT_CONSUMER) {
        for (i = 0; i < cfg->nconsumers; i++)
            config_consumer_clear(&cfg->consumers[i]);
        free(cfg->consumers);
        cfg->consumers = NULL;
        cfg->nconsumers = 0;
    }
}

static char **config_str_slot(struct bridge_config *cfg, const struct config_opt *o)
{
    if (!strcmp(o->flag, "--database-url"))
        return &cfg->database_url;
    if (!strcmp(o->flag, "--kafka-bootstrap-servers"))
        return &cfg->kafka_bootstrap_servers;
    if (!strcmp(o->flag, "--auth-jwt-key"))
        return &cfg->auth_jwt_key_file;
    if (!strcmp(o->flag, "--auth-jwt-audience"))
        return &cfg->auth_jwt_audience;
    if (!strcmp(o->flag, "--auth-jwt-issuer"))
        return &cfg->auth_jwt_issuer;
    if (!strcmp(o->flag, "--auth-sql-function"))
        return &cfg->auth_sql_function;
    if (!strcmp(o->flag, "--topic-allow"))
        return &cfg->topic_allow;
    if (!strcmp(o->flag, "--tls-cert"))
        return &cfg->tls_cert;
    if (!strcmp(o->flag, "--tls-key"))
        return &cfg->tls_key;
    return &cfg->static_dir;
}

/* --topic-allow: comma-separated Kafka topic names ([A-Za-z0-9._-], 1..249 each) */
static int config_topic_list_ok(const char *v)
{
    size_t n;

    for (;;) {
        n = strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
        if (n == 0 || n > 249 || (v[n] != ',' && v[n] != '\0'))
            return 0;
        if (v[n] == '\0')
            return 1;
        v += n + 1;
    }
}

static void config_set_hardening(struct bridge_config *cfg, const char *flag, long v)
{
    if (!strcmp(flag, "--max-clients-per-ip"))
        cfg->max_clients_per_ip = (int)v;
    else if (!strcmp(flag, "--reserved-fds"))
        cfg->reserved_fds = (int)v;
    else if (!strcmp(flag, "--header-timeout-seconds"))
        cfg->header_timeout_seconds = (int)v;
    else if (!strcmp(flag, "--idle-heartbeats"))
        cfg->idle_heartbeats = (int)v;
    else if (!strcmp(flag, "--pg-pool-size"))
        cfg->pg_pool_size = (int)v;
    else if (!strcmp(flag, "--statement-timeout-ms"))
        cfg->statement_timeout_ms = (int)v;
    else if (!strcmp(flag, "--publisher-warn-seconds"))
        cfg->publisher_warn_seconds = (int)v;
}

static void config_set_int(struct bridge_config *cfg, const struct config_opt *o, long v)
{
    if (!strcmp(o->flag, "--heartbeat-seconds"))
        cfg->heartbeat_seconds = (int)v;
    else if (!strcmp(o->flag, "--retry-ms"))
        cfg->retry_ms = (int)v;
    else if (!strcmp(o->flag, "--max-clients"))
        cfg->max_clients = (int)v;
    else if (!strcmp(o->flag, "--client-buffer-bytes"))
        cfg->client_buffer_bytes = (size_t)v;
    else if (!strcmp(o->flag, "--drain-batch"))
        cfg->drain_batch = (int)v;
    else if (!strcmp(o->flag, "--flush-timeout-ms"))
        cfg->flush_timeout_ms = (int)v;
    else
        config_set_hardening(cfg, o->flag, v);
}

/* one Host allow-list entry or a comma list of them */
static int config_add_hosts(struct bridge_config *cfg, const char *v)
{
    const char *p = v, *end;
    size_t len;

    do {
        end = strchr(p, ',');
        len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p))
            p++, len--;
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (!guard_host_entry_ok(p, len)
            || config_strv_push(&cfg->allowed_hosts, &cfg->nallowed_hosts, p, len) < 0)
            return -1;
        p = end ? end + 1 : NULL;
    } while (p);
    return 0;
}

/* the authorization options that need more than a string */
static int config_apply_auth(struct bridge_config *cfg, const struct config_opt *o, const char *v,
                             const char *name, char **errmsg)
{
    switch (o->kind) {
    case OPT_AUTH_MODE:
        if (strcmp(v, "none"))
            return buf_fail(errmsg, -1,
                               "invalid value '%s' for %s: the only mode is none (tokens are "
                               "on when --auth-jwt-key is given)",
                               v, name);
        cfg->auth_none = 1;
        return 0;
    case OPT_JWT_ALG:
        if (auth_alg_parse(v) < 0)
            return buf_fail(errmsg, -1,
                               "invalid value '%s' for %s: expected HS256, HS384, HS512, RS256 "
                               "or ES256",
                               v, name);
        return config_set_str(&cfg->auth_jwt_alg, v) < 0 ? buf_fail(errmsg, -1, "out of memory") : 0;
    case OPT_SQL_FUNC:
        if (!config_ident_ok(v, strlen(v)) && !config_handler_ok(v))
            return buf_fail(errmsg, -1,
                               "invalid value '%s' for %s: expected [schema.]function, SQL "
                               "identifiers",
                               v, name);
        return config_set_str(&cfg->auth_sql_function, v) < 0 ? buf_fail(errmsg, -1, "out of memory")
                                                              : 0;
    default:
        if (config_add_hosts(cfg, v) < 0)
            return buf_fail(errmsg, -1,
                               "invalid value '%s' for %s: expected host[:port] entries (a "
                               "name, an IPv4 or [IPv6] address), comma-separated",
                               v, name);
        return 0;
    }
}

/* apply one value; from_env selects list syntax; name is what errors show */
static int config_apply(struct bridge_config *cfg, const struct config_opt *o, const char *v,
                        int from_env, const char *name, char **errmsg)
{
    long n;

    switch (o->kind) {
    case OPT_STR:
        if (!*v || strlen(v) > 4096)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected a non-empty string", v, name);
        if (!strcmp(o->flag, "--topic-allow") && !config_topic_list_ok(v))
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected topic names "
                               "([A-Za-z0-9._-], 1 to 249 characters) separated by commas", v, name);
        if (config_set_str(config_str_slot(cfg, o), v) < 0)
            return buf_fail(errmsg, -1, "out of memory");
        return 0;
    case OPT_INT:
    case OPT_SIZE:
        if (config_parse_long(v, o->min, o->max, &n) < 0)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected an integer from %ld to %ld",
                               v, name, o->min, o->max);
        config_set_int(cfg, o, n);
        return 0;
    case OPT_LISTEN:
        if (config_parse_listen(cfg, v) < 0)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected HOST:PORT with HOST an IPv4 "
                               "address or localhost and PORT 1..65535", v, name);
        return 0;
    case OPT_LOGLEVEL:
        if (config_parse_level(v, &cfg->log_level) < 0)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected debug, info, warn or error",
                               v, name);
        return 0;
    case OPT_CORS:
        if (config_add_cors(cfg, v, from_env) < 0)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected http(s)://host[:port] "
                               "without a trailing slash, or *", v, name);
        return 0;
    case OPT_KV:
        if (config_add_kv(cfg, v) < 0)
            return buf_fail(errmsg, -1, "invalid value '%s' for %s: expected KEY=VALUE", v, name);
        return 0;
    case OPT_CONSUMER:
        return config_add_consumers(cfg, v, from_env, errmsg, name);
    case OPT_AUTH_MODE:
    case OPT_JWT_ALG:
    case OPT_SQL_FUNC:
    case OPT_HOSTS:
        return config_apply_auth(cfg, o, v, name, errmsg);
    default:
        return 0;
    }
}

static void config_defaults(struct bridge_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_host = strdup("127.0.0.1");
    cfg->listen_port = 8001;
    cfg->heartbeat_seconds = 15;
    cfg->retry_ms = 3000;
    cfg->max_clients = 10000;
    cfg->client_buffer_bytes = 262144;
    cfg->max_clients_per_ip = 64;
    cfg->reserved_fds = 64;
    cfg->header_timeout_seconds = 10;
    cfg->idle_heartbeats = 4;
    cfg->pg_pool_size = 4;
    cfg->statement_timeout_ms = 30000;
    cfg->publisher_warn_seconds = 60;
    cfg->drain_enabled = 1;
    cfg->drain_batch = 5000;
    cfg->flush_timeout_ms = 10000;
    cfg->log_level = LOG_INFO;
}

static const char *config_getenv(char **envp, const char *name)
{
    size_t n = strlen(name);

    for (; envp && *envp; envp++) {
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    }
    return NULL;
}

static int config_from_env(struct bridge_config *cfg, char **envp, char **errmsg)
{
    size_t i;
    const char *v;

    for (i = 0; i < CONFIG_NOPTS; i++) {
        if (!config_opts[i].env || !(v = config_getenv(envp, config_opts[i].env)))
            continue;
        if (config_apply(cfg, &config_opts[i], v, 1, config_opts[i].env, errmsg) < 0)
            return -1;
    }
    return 0;
}

static const struct config_opt *config_find(const char *arg, const char **inline_val)
{
    size_t i, n;

    *inline_val = NULL;
    if (strncmp(arg, "-X", 2) == 0 && arg[1] == 'X') {
        if (arg[2])
            *inline_val = arg + 2;
        return &config_opts[3];
    }
    for (i = 0; i < CONFIG_NOPTS; i++) {
        n = strlen(config_opts[i].flag);
        if (strncmp(arg, config_opts[i].flag, n) != 0)
            continue;
        if (arg[n] == '\0')
            return &config_opts[i];
        if (arg[n] == '=') {
            *inline_val = arg + n + 1;
            return &config_opts[i];
        }
    }
    return NULL;
}

static int config_takes_value(enum config_opt_kind k)
{
    return k != OPT_FLAG_OFF && k != OPT_HELP && k != OPT_VERSION;
}

static int config_from_argv(struct bridge_config *cfg, int argc, char **argv, char **errmsg)
{
    int i, seen_cors = 0, seen_consumer = 0, seen_hosts = 0;
    const struct config_opt *o;
    const char *v;

    for (i = 1; i < argc; i++) {
        o = config_find(argv[i], &v);
        if (!o)
            return buf_fail(errmsg, -1, "unknown option '%s' (see --help)", argv[i]);
        if (!config_takes_value(o->kind)) {
            if (v)
                return buf_fail(errmsg, -1, "option %s takes no value, got '%s'", o->flag, v);
            if (o->kind == OPT_FLAG_OFF)
                cfg->drain_enabled = 0;
            else if (o->kind == OPT_HELP)
                cfg->show_help = 1;
            else
                cfg->show_version = 1;
            continue;
        }
        if (!v) {
            if (i + 1 >= argc)
                return buf_fail(errmsg, -1, "option %s needs a value", o->flag);
            v = argv[++i];
        }
        /* flags replace the environment's list instead of extending it */
        if ((o->kind == OPT_CORS && !seen_cors++) || (o->kind == OPT_CONSUMER && !seen_consumer++)
            || (o->kind == OPT_HOSTS && !seen_hosts++))
            config_clear_list(cfg, o->kind);
        if (config_apply(cfg, o, v, 0, o->flag, errmsg) < 0)
            return -1;
    }
    return 0;
}

/* the certificate and its key come together (the files are checked by tls.c) */
static int config_check_tls(const struct bridge_config *cfg, char **errmsg)
{
    if (!cfg->tls_cert == !cfg->tls_key)
        return 0;
    return buf_fail(errmsg, -1, "%s needs %s too (--tls-cert and --tls-key, or AEGIS_TLS_CERT and "
                       "AEGIS_TLS_KEY, go together)", cfg->tls_cert ? "--tls-cert" : "--tls-key",
                       cfg->tls_cert ? "--tls-key (AEGIS_TLS_KEY)" : "--tls-cert (AEGIS_TLS_CERT)");
}

int config_parse(struct bridge_config *cfg, int argc, char **argv, char **envp, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    config_defaults(cfg);
    if (!cfg->listen_host)
        return buf_fail(errmsg, -1, "out of memory");
    if (config_from_env(cfg, envp, errmsg) < 0 || config_from_argv(cfg, argc, argv, errmsg) < 0 ||
        config_check_tls(cfg, errmsg) < 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct bridge_config *cfg)
{
    size_t i;

    free(cfg->database_url);
    free(cfg->listen_host);
    free(cfg->kafka_bootstrap_servers);
    free(cfg->static_dir);
    free(cfg->auth_jwt_key_file);
    free(cfg->auth_jwt_alg);
    free(cfg->auth_jwt_audience);
    free(cfg->auth_jwt_issuer);
    free(cfg->auth_sql_function);
    config_clear_list(cfg, OPT_HOSTS);
    free(cfg->topic_allow);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    for (i = 0; i < cfg->nrdkafka_props; i++) {
        free(cfg->rdkafka_props[i].key);
        free(cfg->rdkafka_props[i].value);
    }
    free(cfg->rdkafka_props);
    config_clear_list(cfg, OPT_CORS);
    config_clear_list(cfg, OPT_CONSUMER);
    memset(cfg, 0, sizeof *cfg);
}

const char *config_usage(void)
{
    static char text[8192];
    size_t i, off;

    if (text[0])
        return text;
    off = (size_t)snprintf(
        text, sizeof text,
        "usage: aegis-bridge [OPTION]...\n"
        "Serves SSE streams of the aegis_events store and relays events to Kafka.\n"
        "aegis-bridge token --help: mint a token for --auth-jwt-key.\n"
        "Flags override environment variables.\n\n");
    for (i = 0; i < CONFIG_NOPTS && off < sizeof text; i++) {
        off += (size_t)snprintf(text + off, sizeof text - off, "  %s%s%s%s\n      %s\n",
                                config_opts[i].flag,
                                config_takes_value(config_opts[i].kind) ? " VALUE" : "",
                                config_opts[i].env ? "   env " : "",
                                config_opts[i].env ? config_opts[i].env : "", config_opts[i].help);
    }
    return text;
}
