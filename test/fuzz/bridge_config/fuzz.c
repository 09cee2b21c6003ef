/*
 * bridge_config: libFuzzer target for the bridge's configuration parser
 * (config_parse: flags, environment values, --consumer specs, -X
 * properties).  The input's lines are the arguments after argv[0]; a line
 * "ENV:NAME=value" goes to the environment instead.  Checked: no crash,
 * leak or sanitizer report (config_free after every parse); a refusal has
 * a one-line message; an accepted configuration holds the documented
 * ranges; the same input parses the same way twice.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_bytes.h"

#define MAX_ARGS 64

static void check_config(const struct bridge_config *c)
{
    if (c->listen_port < 0 || c->listen_port > 65535 || !c->listen_host)
        fuzz_fail("a listen address out of range accepted", NULL);
    if (c->heartbeat_seconds < 1 || c->heartbeat_seconds > 3600 || c->retry_ms < 0 ||
        c->retry_ms > 3600000 || c->max_clients < 1 || c->max_clients > 1000000 ||
        c->client_buffer_bytes < 1024 || c->client_buffer_bytes > 1073741824 ||
        c->drain_batch < 1 || c->drain_batch > 100000 || c->flush_timeout_ms < 0 ||
        c->flush_timeout_ms > 600000 || c->log_level < LOG_DEBUG || c->log_level > LOG_ERROR)
        fuzz_fail("a number out of its documented range accepted", NULL);
    for (size_t i = 0; i < c->nconsumers; i++) {
        const struct config_consumer *k = &c->consumers[i];
        if (!k->group || !k->group[0] || !k->handler || !strchr(k->handler, '.') ||
            k->ntopics == 0 || k->batch < 1 || k->batch > 10000 || k->poll_timeout_ms < 0)
            fuzz_fail("a consumer spec outside the rules accepted", k->group);
        for (size_t t = 0; t < k->ntopics; t++)
            if (!k->topics[t] || !k->topics[t][0])
                fuzz_fail("a consumer with an empty topic accepted", k->group);
    }
    for (size_t i = 0; i < c->nrdkafka_props; i++)
        if (!c->rdkafka_props[i].key || !c->rdkafka_props[i].key[0] || !c->rdkafka_props[i].value)
            fuzz_fail("a -X property without a key accepted", NULL);
}

static int parse_once(int argc, char **argv, char **envp, char **msg_out)
{
    struct bridge_config cfg;
    char *errmsg = NULL;
    int rc;

    memset(&cfg, 0, sizeof cfg);
    rc = config_parse(&cfg, argc, argv, envp, &errmsg);
    if (rc != 0 && rc != -1)
        fuzz_fail("config_parse returned neither 0 nor -1", NULL);
    if (rc == -1 && (!errmsg || !errmsg[0]))
        fuzz_fail("a refusal without a message", NULL);
    if (rc == -1 && strchr(errmsg, '\n') && strchr(errmsg, '\n')[1] != '\0')
        fuzz_fail("a refusal message of several lines", errmsg);
    if (rc == 0)
        check_config(&cfg);
    *msg_out = errmsg;
    config_free(&cfg);
    return rc;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *text = strndup((const char *)data, size);
    char *argv[MAX_ARGS + 2], *envp[MAX_ARGS + 1], *save = NULL, *line;
    int argc = 0, envc = 0, rc1, rc2;
    char *m1 = NULL, *m2 = NULL;

    if (!text)
        abort();
    argv[argc++] = "aegis-bridge";
    for (line = strtok_r(text, "\n", &save); line && argc <= MAX_ARGS && envc < MAX_ARGS;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "ENV:", 4))
            envp[envc++] = line + 4;
        else
            argv[argc++] = line;
    }
    argv[argc] = NULL;
    envp[envc] = NULL;
    rc1 = parse_once(argc, argv, envp, &m1);
    rc2 = parse_once(argc, argv, envp, &m2);
    if (rc1 != rc2 || (m1 && strcmp(m1, m2)))
        fuzz_fail("two parses of one input disagree", m1);
    free(m1);
    free(m2);
    free(text);
    return 0;
}
