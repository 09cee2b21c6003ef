/*
 * runreq_test.c: unit tests of runreq.c, the body of POST …/runs: the
 * fields, their types and rules, and every kind of bad body.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "runreq.h"

#include "check.h"

static int parses(const char *body)
{
    struct runreq r;
    char err[256];
    int rc = runreq_parse(body, strlen(body), &r, err, sizeof err);

    runreq_clear(&r);
    return rc == 0;
}

int main(void)
{
    struct runreq r;
    char err[256], *big;
    const char *full = "{\"message\":\"a\\nb\",\"agent_id\":\"a1\",\"agent_type\":\"rule_37\"}";

    CHECK("message, agent_id, agent_type",
          runreq_parse(full, strlen(full), &r, err, sizeof err) == 0 && !strcmp(r.message, "a\nb")
              && !strcmp(r.agent_id, "a1") && !strcmp(r.agent_type, "rule_37"));
    runreq_clear(&r);
    CHECK("message alone", runreq_parse("{\"message\":\"hi\"}", 16, &r, err, sizeof err) == 0
                               && !r.agent_id && !r.agent_type);
    runreq_clear(&r);
    CHECK("tab and UTF-8 text", parses("{\"message\":\"caf\\u00e9\\tx\"}"));
    CHECK("empty body refused", !parses(""));
    CHECK("not JSON refused",
          runreq_parse("{\"message\":", 11, &r, err, sizeof err) < 0 && strstr(err, "JSON object"));
    CHECK("array refused", !parses("[\"hi\"]"));
    CHECK("missing message refused",
          runreq_parse("{\"agent_type\":\"x\"}", 18, &r, err, sizeof err) < 0
              && strstr(err, "message"));
    CHECK("empty message refused", !parses("{\"message\":\"\"}"));
    CHECK("message a number refused", !parses("{\"message\":7}"));
    CHECK("NUL in the message refused", !parses("{\"message\":\"a\\u0000b\"}"));
    CHECK("CR in the message refused", !parses("{\"message\":\"a\\r\\nb\"}"));
    CHECK("ESC in the message refused", !parses("{\"message\":\"a\\u001bb\"}"));
    CHECK("unknown field refused",
          runreq_parse("{\"message\":\"a\",\"prio\":1}", 24, &r, err, sizeof err) < 0
              && strstr(err, "unknown field"));
    CHECK("duplicate field refused", !parses("{\"message\":\"a\",\"message\":\"b\"}"));
    CHECK("agent_type with a space refused", !parses("{\"message\":\"a\",\"agent_type\":\"a b\"}"));
    CHECK("agent_id a number refused", !parses("{\"message\":\"a\",\"agent_id\":5}"));
    CHECK("agent_type null refused", !parses("{\"message\":\"a\",\"agent_type\":null}"));
    big = malloc(9000 + 20);
    strcpy(big, "{\"message\":\"");
    memset(big + 12, 'x', 8192);
    strcpy(big + 12 + 8192, "\"}");
    CHECK("8192-byte message accepted", parses(big));
    memset(big + 12, 'x', 8193);
    strcpy(big + 12 + 8193, "\"}");
    CHECK("8193-byte message refused", !parses(big));
    free(big);
    CHECK("body over 64 KiB refused",
          runreq_parse("{}", 70000, &r, err, sizeof err) < 0 && strstr(err, "64 KiB"));
    return check_done("runreq_test");
}
