/*
 * config.h: every option of aegis-bridge, from flags and the environment
 * (flags win).  config_parse is pure (no I/O, no exit) so it is unit-tested;
 * other modules only read the resulting struct.
 */
#ifndef AEGIS_CONFIG_H
#define AEGIS_CONFIG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

struct config_kv {
    char *key;
    char *value;
};

struct config_consumer {
    char *group;
    char **topics;          /* ntopics entries */
    size_t ntopics;
    char *handler;          /* schema.func */
    int batch;              /* 1..10000, default 100 */
    int poll_timeout_ms;    /* default 1000 */
};

struct bridge_config {
    char *database_url;               /* NULL: libpq's PG* environment */
    char *listen_host;                /* default "127.0.0.1" */
    int listen_port;                  /* default 8001 */
    char *kafka_bootstrap_servers;    /* NULL: Kafka off */
    struct config_kv *rdkafka_props;  /* -X key=value, in order */
    size_t nrdkafka_props;
    int heartbeat_seconds;            /* 15 */
    int retry_ms;                     /* 3000 */
    char **cors_origins;              /* none by default; "*" allows any */
    size_t ncors_origins;
    int max_clients;                  /* 10000 */
    size_t client_buffer_bytes;       /* 262144 */
    int max_clients_per_ip;           /* 64: SSE streams per client address */
    int reserved_fds;                 /* 64: descriptors kept free below RLIMIT_NOFILE */
    int header_timeout_seconds;       /* 10: lws's timeout for a request's headers */
    int idle_heartbeats;              /* 4: heartbeats without a byte taken while data waits */
    int pg_pool_size;                 /* 4: connections for replays, run requests, metrics */
    int statement_timeout_ms;         /* 30000: statement_timeout of every session */
    int publisher_warn_seconds;       /* 60: warn about an open publisher this old */
    char *topic_allow;                /* NULL: any topic; else a comma list */
    char *static_dir;                 /* NULL: no dashboard files */
    char *tls_cert;                   /* NULL (with tls_key): plain HTTP */
    char *tls_key;
    int drain_enabled;                /* 1; --no-drain */
    int drain_batch;                  /* 1000 */
    int flush_timeout_ms;             /* 10000 */
    enum log_level log_level;         /* LOG_INFO */
    struct config_consumer *consumers;
    size_t nconsumers;
    /* authorization (gate.c, auth.c) */
    char *auth_jwt_key_file;          /* NULL: no tokens (anonymous on loopback only) */
    char *auth_jwt_alg;               /* NULL: HS256 */
    char *auth_jwt_audience;          /* NULL: aud not checked */
    char *auth_jwt_issuer;            /* NULL: iss not checked */
    int auth_none;                    /* --auth none: anonymous off loopback too */
    char *auth_sql_function;          /* [schema.]function policy hook, or NULL */
    char **allowed_hosts;             /* Host values accepted; none: loopback defaults */
    size_t nallowed_hosts;
    int show_help;                    /* --help given: print config_usage(), exit 0 */
    int show_version;                 /* --version given */
};

#define BRIDGE_VERSION "0.2.0"

/* Fills cfg (defaults, then envp, then argv).  envp NULL means no environment.
 * Returns 0, or -1 with *errmsg (malloc'd, names the option and the value). */
int config_parse(struct bridge_config *cfg, int argc, char **argv, char **envp, char **errmsg);
void config_free(struct bridge_config *cfg);
const char *config_usage(void);
const char *config_log_level_name(enum log_level l);

#endif
