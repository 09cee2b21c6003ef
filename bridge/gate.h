/*
 * gate.h: the authorization step of the HTTP request path.  http.c asks the
 * gate before it serves anything: is the request line whole, is the Host
 * allowed, may a side effect come from where it comes from, which token
 * (auth.c) and what it covers, and the optional SQL policy.  The gate
 * decides; http.c writes the answer.  Also the per-connection timer that
 * ends a stream when its token expires.
 */
#ifndef AEGIS_GATE_H
#define AEGIS_GATE_H

#include "auth.h"

struct bridge;
struct lws;
struct gate;

/* Built from b->cfg at start: loads the key, the allow-list, refuses what
 * deny-by-default forbids, checks the SQL policy function (a blocking
 * check before the loop runs).  Returns 0, or the process exit status (2:
 * configuration, 1: cannot check) with *errmsg (malloc'd). */
int gate_start(struct bridge *b, char **errmsg);
void gate_stop(struct bridge *b);

/* What the request wants, as http.c routed it. */
enum gate_action {
    GATE_OPEN, /* dashboard files: Host check only (/healthz skips the gate) */
    GATE_METRICS,
    GATE_READ,         /* a stream without side effect */
    GATE_READ_AND_RUN, /* GET stream with ?message= */
    GATE_RUN           /* POST /conversations/{id}/runs */
};

struct gate_target {
    enum gate_action action;
    const char *kind; /* "workspace" / "conversation" (streams, runs) */
    const char *id;
    const char *agent_type; /* runs; NULL: none given */
};

/* The answer when the gate refuses. */
struct gate_refusal {
    int status;     /* 400, 401, 403, 421 */
    char body[256]; /* one line, no token bytes */
    int challenge;  /* add WWW-Authenticate: Bearer … */
};

/*
 * Checks a request.  Returns 1 with *claims (free with auth_claims_free;
 * everything allowed when auth is off) to go on, 0 with *no filled in to
 * refuse, -1 on out of memory.  Logs each refusal (never the token).
 */
int gate_check(struct lws *wsi, const struct gate_target *t, struct auth_claims **claims,
               struct gate_refusal *no);

/* 1 when a SQL policy function must also allow (after gate_check). */
int gate_policy_on(const struct bridge *b);

/* Asks the policy; done(wsi_alive_ud, allowed) runs later on the loop,
 * allowed 1/0 (an error or NULL is 0, logged).  The handle lets the caller
 * cancel interest when its connection closes (done then runs with
 * gone = 1 and must not touch the connection).  Returns NULL if it cannot
 * ask (treat as a refusal, 503). */
struct gate_policy_call;
typedef void (*gate_policy_cb)(void *ud, int allowed, int gone);
struct gate_policy_call *gate_policy_ask(struct bridge *b, const struct auth_claims *c,
                                         const char *kind, const char *id, gate_policy_cb done,
                                         void *ud);
void gate_policy_forget(struct gate_policy_call *call);

/* Ends the stream on wsi when the token expires (exp; 0: never): returns a
 * handle to free when the connection closes, or NULL (nothing to watch or
 * out of memory). */
struct gate_expiry;
struct gate_expiry *gate_expiry_start(struct bridge *b, struct lws *wsi, long long exp);
void gate_expiry_free(struct gate_expiry *e);

/* CORS: 1 if origin may receive credentials (listed exactly, not "*"). */
int gate_cors_credentials(const struct bridge *b, const char *origin);

/* The request's query string with access_token redacted, for logs
 * (malloc'd; NULL when there is none). */
char *gate_log_query(struct lws *wsi);

#endif
