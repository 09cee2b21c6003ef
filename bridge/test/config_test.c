/*
 * config_test.c: unit tests of config_parse: defaults, every option from
 * flags and from the environment, flags over environment, and every
 * rejection rule (the message names the option and the value).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#include "check.h"

/* parse "a b c" split on spaces (no quoting) with env (NULL-terminated) */
static int parse(struct bridge_config *cfg, const char *args, char **env, char **err)
{
    char *copy = strdup(args), *argv[64], *tok, *save = NULL;
    int argc = 0, rc;

    argv[argc++] = "aegis-bridge";
    for (tok = strtok_r(copy, " ", &save); tok && argc < 63; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    rc = config_parse(cfg, argc, argv, env, err);
    free(copy);
    return rc;
}

static int parse_argv(struct bridge_config *cfg, int argc, char **argv, char **err)
{
    return config_parse(cfg, argc, argv, NULL, err);
}

/* expects failure with a message containing both needles */
static void rejects(const char *args, char **env, const char *n1, const char *n2)
{
    struct bridge_config cfg;
    char *err = NULL;
    char name[256];
    int rc = parse(&cfg, args, env, &err);

    snprintf(name, sizeof name, "rejects '%s'", args);
    CHECK(name, rc == -1 && err && strstr(err, n1) && (!n2 || strstr(err, n2)));
    if (rc == 0)
        config_free(&cfg);
    else if (err && !(strstr(err, n1) && (!n2 || strstr(err, n2))))
        printf("#   message was: %s\n", err);
    free(err);
}

/* expects "--consumer SPEC" (one argv element) to fail naming --consumer and needle */
static void rejects_consumer(const char *spec, const char *needle)
{
    char *argv[] = { "aegis-bridge", "--consumer", (char *)spec, NULL };
    struct bridge_config cfg;
    char *err = NULL;
    char name[256];
    int rc = parse_argv(&cfg, 3, argv, &err);

    snprintf(name, sizeof name, "rejects --consumer '%s'", spec);
    CHECK(name, rc == -1 && err && strstr(err, "--consumer") && strstr(err, spec) && strstr(err, needle));
    if (rc == 0)
        config_free(&cfg);
    else if (err && !strstr(err, needle))
        printf("#   message was: %s\n", err);
    free(err);
}

static void test_defaults(void)
{
    struct bridge_config cfg;
    char *err = NULL;

    CHECK("no arguments parse", parse(&cfg, "", NULL, &err) == 0 && !err);
    CHECK("default listen 127.0.0.1:8001", !strcmp(cfg.listen_host, "127.0.0.1") && cfg.listen_port == 8001);
    CHECK("default database_url NULL", cfg.database_url == NULL);
    CHECK("default kafka off", cfg.kafka_bootstrap_servers == NULL && cfg.nrdkafka_props == 0);
    CHECK("default heartbeat 15", cfg.heartbeat_seconds == 15);
    CHECK("default retry 3000", cfg.retry_ms == 3000);
    CHECK("default no cors", cfg.ncors_origins == 0);
    CHECK("default max_clients 10000", cfg.max_clients == 10000);
    CHECK("default client buffer 262144", cfg.client_buffer_bytes == 262144);
    CHECK("default static_dir NULL", cfg.static_dir == NULL);
    CHECK("default drain on, batch 1000, flush 10000",
          cfg.drain_enabled == 1 && cfg.drain_batch == 5000 && cfg.flush_timeout_ms == 10000);
    CHECK("default log level info", cfg.log_level == LOG_INFO);
    CHECK("default no consumers", cfg.nconsumers == 0);
    config_free(&cfg);
}

static void test_flags(void)
{
    struct bridge_config cfg;
    char *err = NULL;
    int rc = parse(&cfg,
                   "--database-url postgresql://u@h/db --listen 0.0.0.0:9000 "
                   "--kafka-bootstrap-servers k1:9092,k2:9092 -X acks=all -Xlinger.ms=5 "
                   "--heartbeat-seconds=2 --retry-ms 0 --cors-origin http://a.test "
                   "--cors-origin=https://b.test:8443 --max-clients 5 --client-buffer-bytes 4096 "
                   "--static-dir /srv/web --no-drain --drain-batch 7 --flush-timeout-ms 0 "
                   "--log-level debug",
                   NULL, &err);

    CHECK("all flags parse", rc == 0);
    if (rc != 0) {
        printf("#   %s\n", err);
        free(err);
        return;
    }
    CHECK("--database-url", !strcmp(cfg.database_url, "postgresql://u@h/db"));
    CHECK("--listen", !strcmp(cfg.listen_host, "0.0.0.0") && cfg.listen_port == 9000);
    CHECK("--kafka-bootstrap-servers", !strcmp(cfg.kafka_bootstrap_servers, "k1:9092,k2:9092"));
    CHECK("-X key=value and -Xkey=value", cfg.nrdkafka_props == 2 &&
          !strcmp(cfg.rdkafka_props[0].key, "acks") && !strcmp(cfg.rdkafka_props[0].value, "all") &&
          !strcmp(cfg.rdkafka_props[1].key, "linger.ms") && !strcmp(cfg.rdkafka_props[1].value, "5"));
    CHECK("--heartbeat-seconds=2", cfg.heartbeat_seconds == 2);
    CHECK("--retry-ms 0", cfg.retry_ms == 0);
    CHECK("--cors-origin repeatable", cfg.ncors_origins == 2 &&
          !strcmp(cfg.cors_origins[1], "https://b.test:8443"));
    CHECK("--max-clients", cfg.max_clients == 5);
    CHECK("--client-buffer-bytes", cfg.client_buffer_bytes == 4096);
    CHECK("--static-dir", !strcmp(cfg.static_dir, "/srv/web"));
    CHECK("--no-drain", cfg.drain_enabled == 0);
    CHECK("--drain-batch", cfg.drain_batch == 7);
    CHECK("--flush-timeout-ms", cfg.flush_timeout_ms == 0);
    CHECK("--log-level debug", cfg.log_level == LOG_DEBUG);
    config_free(&cfg);
}

static void test_env(void)
{
    char *env[] = { "DATABASE_URL=host=/tmp dbname=x", "AEGIS_LISTEN=localhost:8100",
                    "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092", "AEGIS_HEARTBEAT_SECONDS=30",
                    "AEGIS_CORS_ORIGINS=http://a.test, http://b.test", "AEGIS_STATIC_DIR=/w",
                    "AEGIS_LOG_LEVEL=warn", "AEGIS_MAX_CLIENTS=77",
                    "AEGIS_CONSUMERS=group=g1 topics=t1,t2 handler=app.h1;group=g2 topics=t3 handler=app.h2 batch=5 poll_timeout=0.25",
                    "UNRELATED=1", NULL };
    struct bridge_config cfg;
    char *err = NULL;
    int rc = parse(&cfg, "", env, &err);

    CHECK("environment parses", rc == 0);
    if (rc != 0) {
        printf("#   %s\n", err);
        free(err);
        return;
    }
    CHECK("DATABASE_URL", !strcmp(cfg.database_url, "host=/tmp dbname=x"));
    CHECK("AEGIS_LISTEN localhost means 127.0.0.1", !strcmp(cfg.listen_host, "127.0.0.1") &&
          cfg.listen_port == 8100);
    CHECK("KAFKA_BOOTSTRAP_SERVERS", !strcmp(cfg.kafka_bootstrap_servers, "127.0.0.1:9092"));
    CHECK("AEGIS_HEARTBEAT_SECONDS", cfg.heartbeat_seconds == 30);
    CHECK("AEGIS_CORS_ORIGINS comma list, spaces trimmed", cfg.ncors_origins == 2 &&
          !strcmp(cfg.cors_origins[0], "http://a.test") && !strcmp(cfg.cors_origins[1], "http://b.test"));
    CHECK("AEGIS_STATIC_DIR", !strcmp(cfg.static_dir, "/w"));
    CHECK("AEGIS_LOG_LEVEL", cfg.log_level == LOG_WARN);
    CHECK("AEGIS_MAX_CLIENTS", cfg.max_clients == 77);
    CHECK("AEGIS_CONSUMERS: two consumers", cfg.nconsumers == 2);
    if (cfg.nconsumers == 2) {
        CHECK("consumer 1 fields and defaults", !strcmp(cfg.consumers[0].group, "g1") &&
              cfg.consumers[0].ntopics == 2 && !strcmp(cfg.consumers[0].topics[1], "t2") &&
              !strcmp(cfg.consumers[0].handler, "app.h1") && cfg.consumers[0].batch == 100 &&
              cfg.consumers[0].poll_timeout_ms == 1000);
        CHECK("consumer 2 batch and poll_timeout", cfg.consumers[1].batch == 5 &&
              cfg.consumers[1].poll_timeout_ms == 250 && cfg.consumers[1].ntopics == 1);
    }
    config_free(&cfg);
}

static void test_flags_override_env(void)
{
    char *env[] = { "AEGIS_LISTEN=127.0.0.1:1111", "AEGIS_CORS_ORIGINS=http://env.test",
                    "AEGIS_CONSUMERS=group=e topics=t handler=a.b", "AEGIS_HEARTBEAT_SECONDS=9", NULL };
    struct bridge_config cfg;
    char *err = NULL;
    int rc = parse(&cfg, "--listen 127.0.0.1:2222 --cors-origin http://flag.test --heartbeat-seconds 3",
                   env, &err);

    CHECK("flags with environment parse", rc == 0);
    if (rc != 0) {
        free(err);
        return;
    }
    CHECK("flag --listen beats AEGIS_LISTEN", cfg.listen_port == 2222);
    CHECK("flag --heartbeat-seconds beats the environment", cfg.heartbeat_seconds == 3);
    CHECK("flag --cors-origin replaces the environment's list", cfg.ncors_origins == 1 &&
          !strcmp(cfg.cors_origins[0], "http://flag.test"));
    CHECK("environment consumers kept when no --consumer flag", cfg.nconsumers == 1);
    config_free(&cfg);
}

static void test_consumer_flag(void)
{
    char *argv[] = { "aegis-bridge", "--consumer",
                     "group=orchestration-engine topics=entity-extraction-worker handler=kg.handle batch=10000 poll_timeout=60",
                     "--consumer", "group=g2 topics=a.b,c_d handler=_s._f", NULL };
    struct bridge_config cfg;
    char *err = NULL;
    int rc = parse_argv(&cfg, 5, argv, &err);

    CHECK("--consumer repeatable", rc == 0 && cfg.nconsumers == 2);
    if (rc == 0) {
        CHECK("--consumer values", cfg.consumers[0].batch == 10000 &&
              cfg.consumers[0].poll_timeout_ms == 60000 &&
              !strcmp(cfg.consumers[0].group, "orchestration-engine") &&
              !strcmp(cfg.consumers[1].topics[0], "a.b"));
        config_free(&cfg);
    } else {
        free(err);
    }
}

static void test_help_version(void)
{
    struct bridge_config cfg;
    char *err = NULL;
    const char *u = config_usage();
    static const char *const documented[] = {
        "--database-url", "DATABASE_URL", "--listen", "AEGIS_LISTEN", "127.0.0.1:8001",
        "--kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", "-X", "--heartbeat-seconds",
        "AEGIS_HEARTBEAT_SECONDS", "--retry-ms", "--cors-origin", "AEGIS_CORS_ORIGINS",
        "--max-clients", "--client-buffer-bytes", "262144", "--static-dir", "AEGIS_STATIC_DIR",
        "--no-drain", "--drain-batch", "--flush-timeout-ms", "--log-level", "AEGIS_LOG_LEVEL",
        "--consumer", "AEGIS_CONSUMERS", "--help", "--version" };
    size_t i;
    char name[128];

    CHECK("--help sets show_help", parse(&cfg, "--help", NULL, &err) == 0 && cfg.show_help);
    config_free(&cfg);
    CHECK("--version sets show_version", parse(&cfg, "--version", NULL, &err) == 0 && cfg.show_version);
    config_free(&cfg);
    for (i = 0; i < sizeof documented / sizeof documented[0]; i++) {
        snprintf(name, sizeof name, "--help documents %s", documented[i]);
        CHECK(name, strstr(u, documented[i]) != NULL);
    }
}

static void test_rejections(void)
{
    char *bad_env_hb[] = { "AEGIS_HEARTBEAT_SECONDS=abc", NULL };
    char *bad_env_cons[] = { "AEGIS_CONSUMERS=group=g topics=t handler=a.b;group=h", NULL };
    char *bad_env_listen[] = { "AEGIS_LISTEN=nohost", NULL };

    rejects("--heartbeat-seconds abc", NULL, "--heartbeat-seconds", "'abc'");
    rejects("--heartbeat-seconds 0", NULL, "--heartbeat-seconds", "'0'");
    rejects("--heartbeat-seconds 3601", NULL, "--heartbeat-seconds", "3601");
    rejects("--heartbeat-seconds 5x", NULL, "--heartbeat-seconds", "5x");
    rejects("--heartbeat-seconds 99999999999999999999", NULL, "--heartbeat-seconds", NULL);
    rejects("--retry-ms -1", NULL, "--retry-ms", "'-1'");
    rejects("--max-clients 0", NULL, "--max-clients", NULL);
    rejects("--client-buffer-bytes 10", NULL, "--client-buffer-bytes", "'10'");
    rejects("--drain-batch 0", NULL, "--drain-batch", NULL);
    rejects("--flush-timeout-ms 600001", NULL, "--flush-timeout-ms", NULL);
    rejects("--listen 127.0.0.1", NULL, "--listen", "'127.0.0.1'");
    rejects("--listen 127.0.0.1:0", NULL, "--listen", NULL);
    rejects("--listen 127.0.0.1:65536", NULL, "--listen", NULL);
    rejects("--listen 999.0.0.1:80", NULL, "--listen", NULL);
    rejects("--listen :80", NULL, "--listen", NULL);
    rejects("--listen example.com:80", NULL, "--listen", NULL);
    rejects("--log-level loud", NULL, "--log-level", "'loud'");
    rejects("-X acks", NULL, "-X", "'acks'");
    rejects("-X =v", NULL, "-X", NULL);
    rejects("--cors-origin ftp://x", NULL, "--cors-origin", "ftp://x");
    rejects("--cors-origin http://x/", NULL, "--cors-origin", NULL);
    rejects("--database-url", NULL, "--database-url", "needs a value");
    rejects("--frobnicate", NULL, "--frobnicate", "unknown option");
    rejects("--no-drain=1", NULL, "--no-drain", NULL);
    rejects_consumer("group=g", "required");
    rejects_consumer("group=g topics=t handler=nodot", "handler");
    rejects_consumer("group=g topics=t handler=a.b batch=0", "batch");
    rejects_consumer("group=g topics=t handler=a.b batch=10001", "batch");
    rejects_consumer("group=g topics=t handler=a.b poll_timeout=0", "poll_timeout");
    rejects_consumer("group=g topics=t handler=a.b poll_timeout=x", "poll_timeout");
    rejects_consumer("group=g topics=t handler=a.b colour=red", "unknown key");
    rejects_consumer("group=g topics=t,,u handler=a.b", "topics");
    rejects_consumer("group=g group=h topics=t handler=a.b", "group");
    rejects_consumer("group=g topics=t handler=a.b;drop", "handler");
    rejects("", bad_env_hb, "AEGIS_HEARTBEAT_SECONDS", "'abc'");
    rejects("", bad_env_cons, "AEGIS_CONSUMERS", "required");
    rejects("", bad_env_listen, "AEGIS_LISTEN", "'nohost'");
}

/* the authorization options (gate.c) */
static void test_auth_options(void)
{
    char *env[] = { "AEGIS_JWT_KEY_FILE=/etc/aegis/jwt",
                    "AEGIS_JWT_ALG=RS256",
                    "AEGIS_ALLOWED_HOSTS=a.example, b.example:8443",
                    "AEGIS_AUTH_SQL_FUNCTION=app.may_read",
                    "AEGIS_JWT_AUDIENCE=aud",
                    "AEGIS_JWT_ISSUER=iss",
                    NULL };
    char *env_none[] = { "AEGIS_AUTH=none", NULL };
    struct bridge_config cfg;
    char *err = NULL;

    CHECK("auth options from the environment",
          parse(&cfg, "", env, &err) == 0 && !strcmp(cfg.auth_jwt_key_file, "/etc/aegis/jwt")
              && !strcmp(cfg.auth_jwt_alg, "RS256") && cfg.nallowed_hosts == 2
              && !strcmp(cfg.allowed_hosts[1], "b.example:8443")
              && !strcmp(cfg.auth_sql_function, "app.may_read")
              && !strcmp(cfg.auth_jwt_audience, "aud") && !strcmp(cfg.auth_jwt_issuer, "iss")
              && !cfg.auth_none);
    config_free(&cfg);
    CHECK("--allowed-hosts flags replace the environment's list",
          parse(&cfg, "--allowed-hosts c.example --allowed-hosts [::1]:80,d.example", env, &err)
                  == 0
              && cfg.nallowed_hosts == 3 && !strcmp(cfg.allowed_hosts[0], "c.example")
              && !strcmp(cfg.allowed_hosts[2], "d.example"));
    config_free(&cfg);
    CHECK("AEGIS_AUTH=none", parse(&cfg, "", env_none, &err) == 0 && cfg.auth_none);
    config_free(&cfg);
    CHECK("--auth none and a function without a schema",
          parse(&cfg, "--auth none --auth-sql-function may_read", NULL, &err) == 0 && cfg.auth_none
              && !strcmp(cfg.auth_sql_function, "may_read"));
    config_free(&cfg);
    CHECK("no auth options: none set", parse(&cfg, "", NULL, &err) == 0 && !cfg.auth_jwt_key_file
                                           && !cfg.auth_none && cfg.nallowed_hosts == 0
                                           && !cfg.auth_sql_function);
    config_free(&cfg);
    rejects("--auth jwt", NULL, "--auth", "none");
    rejects("--auth-jwt-alg none", NULL, "--auth-jwt-alg", "HS256");
    rejects("--auth-jwt-alg hs256", NULL, "--auth-jwt-alg", "RS256");
    rejects("--auth-jwt-alg RS512", NULL, "--auth-jwt-alg", NULL);
    rejects("--allowed-hosts http://a.example", NULL, "--allowed-hosts", "host[:port]");
    rejects("--allowed-hosts a.example,", NULL, "--allowed-hosts", NULL);
    rejects("--allowed-hosts a.example:99999x", NULL, "--allowed-hosts", NULL);
    rejects("--auth-sql-function app.may_read();--", NULL, "--auth-sql-function", "identifiers");
    rejects("--auth-sql-function a.b.c", NULL, "--auth-sql-function", NULL);
    rejects("--auth-jwt-key", NULL, "--auth-jwt-key", "needs a value");
}

/* the hardening settings: defaults, flags, environment, bad values */
static void test_hardening_options(void)
{
    char *env[] = { "AEGIS_MAX_CLIENTS_PER_IP=7", "AEGIS_HEADER_TIMEOUT_SECONDS=3",
                    "AEGIS_TOPIC_ALLOW=a,b.c", NULL };
    char *bad_env_pool[] = { "AEGIS_PG_POOL_SIZE=0", NULL };
    struct bridge_config cfg;
    char *err = NULL;

    CHECK("hardening defaults parse", parse(&cfg, "", NULL, &err) == 0);
    CHECK("default --max-clients-per-ip 64", cfg.max_clients_per_ip == 64);
    CHECK("default --reserved-fds 64", cfg.reserved_fds == 64);
    CHECK("default --header-timeout-seconds 10", cfg.header_timeout_seconds == 10);
    CHECK("default --idle-heartbeats 4", cfg.idle_heartbeats == 4);
    CHECK("default --pg-pool-size 4", cfg.pg_pool_size == 4);
    CHECK("default --statement-timeout-ms 30000", cfg.statement_timeout_ms == 30000);
    CHECK("default --publisher-warn-seconds 60", cfg.publisher_warn_seconds == 60);
    CHECK("default --topic-allow: any", cfg.topic_allow == NULL);
    config_free(&cfg);
    CHECK("hardening flags parse",
          parse(&cfg, "--max-clients-per-ip 2 --reserved-fds 32 --header-timeout-seconds 5 "
                "--idle-heartbeats 9 --pg-pool-size 8 --statement-timeout-ms 1000 "
                "--publisher-warn-seconds 30 --topic-allow x,y-z", NULL, &err) == 0);
    CHECK("hardening flags set", cfg.max_clients_per_ip == 2 && cfg.reserved_fds == 32 &&
          cfg.header_timeout_seconds == 5 && cfg.idle_heartbeats == 9 && cfg.pg_pool_size == 8 &&
          cfg.statement_timeout_ms == 1000 && cfg.publisher_warn_seconds == 30 &&
          cfg.topic_allow && !strcmp(cfg.topic_allow, "x,y-z"));
    config_free(&cfg);
    CHECK("hardening environment parses", parse(&cfg, "", env, &err) == 0);
    CHECK("hardening environment sets", cfg.max_clients_per_ip == 7 &&
          cfg.header_timeout_seconds == 3 && cfg.topic_allow && !strcmp(cfg.topic_allow, "a,b.c"));
    config_free(&cfg);
    rejects("--max-clients-per-ip 0", NULL, "--max-clients-per-ip", "'0'");
    rejects("--reserved-fds 15", NULL, "--reserved-fds", "'15'");
    rejects("--header-timeout-seconds 301", NULL, "--header-timeout-seconds", "301");
    rejects("--idle-heartbeats 0", NULL, "--idle-heartbeats", NULL);
    rejects("--pg-pool-size 65", NULL, "--pg-pool-size", "65");
    rejects("--statement-timeout-ms 999", NULL, "--statement-timeout-ms", "999");
    rejects("--publisher-warn-seconds x", NULL, "--publisher-warn-seconds", "'x'");
    rejects("--topic-allow a,,b", NULL, "--topic-allow", "'a,,b'");
    rejects("--topic-allow a,b,", NULL, "--topic-allow", NULL);
    rejects("--topic-allow bad/topic", NULL, "--topic-allow", "topic names");
    rejects("", bad_env_pool, "AEGIS_PG_POOL_SIZE", "'0'");
}

/* --tls-cert/--tls-key: both or neither, from flags or the environment */
static void test_tls_options(void)
{
    char *env_both[] = { "AEGIS_TLS_CERT=/e/c.pem", "AEGIS_TLS_KEY=/e/k.pem", NULL };
    char *env_cert[] = { "AEGIS_TLS_CERT=/e/c.pem", NULL };
    struct bridge_config cfg;
    char *err = NULL;

    CHECK("tls: off by default", parse(&cfg, "", NULL, &err) == 0 && !cfg.tls_cert && !cfg.tls_key);
    config_free(&cfg);
    CHECK("tls: --tls-cert and --tls-key",
          parse(&cfg, "--tls-cert /c.pem --tls-key /k.pem", NULL, &err) == 0 &&
          !strcmp(cfg.tls_cert, "/c.pem") && !strcmp(cfg.tls_key, "/k.pem"));
    config_free(&cfg);
    CHECK("tls: AEGIS_TLS_CERT and AEGIS_TLS_KEY",
          parse(&cfg, "", env_both, &err) == 0 && !strcmp(cfg.tls_cert, "/e/c.pem") &&
          !strcmp(cfg.tls_key, "/e/k.pem"));
    config_free(&cfg);
    CHECK("tls: a flag completes the environment's pair",
          parse(&cfg, "--tls-key /k.pem", env_cert, &err) == 0 && !strcmp(cfg.tls_cert, "/e/c.pem"));
    config_free(&cfg);
    rejects("--tls-cert /c.pem", NULL, "--tls-cert needs --tls-key", NULL);
    rejects("--tls-key /k.pem", NULL, "--tls-key needs --tls-cert", NULL);
    rejects("", env_cert, "AEGIS_TLS_KEY", NULL);
    rejects("--tls-cert", NULL, "--tls-cert", "needs a value");
}

int main(void)
{
    test_hardening_options();
    test_defaults();
    test_flags();
    test_env();
    test_flags_override_env();
    test_consumer_flag();
    test_help_version();
    test_rejections();
    test_auth_options();
    test_tls_options();
    return check_done("config_test");
}
