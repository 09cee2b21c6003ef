/*
 * runreq.h: the body of POST /conversations/{id}/runs, a JSON object
 * {"message", "agent_id", "agent_type"}, parsed (jansson) and validated as
 * strictly as the ?message= arguments of a stream request.
 */
#ifndef AEGIS_RUNREQ_H
#define AEGIS_RUNREQ_H

#include <stddef.h>

#define RUNREQ_BODY_MAX 65536   /* bytes of JSON accepted */
#define RUNREQ_MESSAGE_MAX 8192 /* bytes of message text, as ?message= */

struct runreq {
    char *message;    /* 1..8192 bytes of UTF-8 text (tab, newline allowed) */
    char *agent_id;   /* NULL if absent */
    char *agent_type; /* NULL if absent */
};

/* Parses body; 0 and *out (free with runreq_clear), or -1 and a one-line
 * reason in err (for a 400 body). */
int runreq_parse(const char *body, size_t len, struct runreq *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void runreq_clear(struct runreq *r);

#endif
