/*
 * runreq.c: owns the run request body: one JSON object with the string
 * fields message (required), agent_id and agent_type, nothing else; the
 * same text and id rules as a stream request's query arguments.
 */
#define _GNU_SOURCE
#include "runreq.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "sse.h"

static int runreq_fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* an optional id field: 0 absent or valid (*out set), -1 bad */
static int runreq_id(json_t *o, const char *key, char **out)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        return 0;
    if (!json_is_string(v) || !sse_id_valid(json_string_value(v), json_string_length(v)))
        return -1;
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

static int runreq_fields(json_t *o, struct runreq *out, char *err, size_t errlen)
{
    const char *key;
    json_t *v, *m = json_object_get(o, "message");

    json_object_foreach(o, key, v) {
        if (strcmp(key, "message") && strcmp(key, "agent_id") && strcmp(key, "agent_type"))
            return runreq_fail(err, errlen,
                               "bad request: unknown field in the run request "
                               "(expected message, agent_id, agent_type)");
    }
    if (!json_is_string(m) || json_string_length(m) < 1
        || json_string_length(m) > RUNREQ_MESSAGE_MAX
        || !http_text_ok(json_string_value(m), json_string_length(m)))
        return runreq_fail(err, errlen,
                           "bad request: message must be a string of 1 to 8192 bytes of "
                           "UTF-8 text (no control characters but tab and newline)");
    if (runreq_id(o, "agent_id", &out->agent_id) < 0
        || runreq_id(o, "agent_type", &out->agent_type) < 0)
        return runreq_fail(err, errlen,
                           "bad request: agent_id and agent_type must be strings matching "
                           "[A-Za-z0-9_.:-]{1,128}");
    out->message = strdup(json_string_value(m));
    return out->message ? 0 : runreq_fail(err, errlen, "out of memory");
}

int runreq_parse(const char *body, size_t len, struct runreq *out, char *err, size_t errlen)
{
    json_t *o;
    int rc;

    memset(out, 0, sizeof *out);
    if (len > RUNREQ_BODY_MAX)
        return runreq_fail(err, errlen, "bad request: the run request is larger than 64 KiB");
    o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return runreq_fail(err, errlen,
                           "bad request: the body must be a JSON object "
                           "{\"message\": …, \"agent_id\": …, \"agent_type\": …}");
    }
    rc = runreq_fields(o, out, err, errlen);
    json_decref(o);
    if (rc < 0)
        runreq_clear(out);
    return rc;
}

void runreq_clear(struct runreq *r)
{
    free(r->message);
    free(r->agent_id);
    free(r->agent_type);
    memset(r, 0, sizeof *r);
}
