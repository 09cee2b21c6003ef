/*
 * auth.h: who may read which stream and start which run.  Verifies a JWT
 * (libjwt, the algorithm pinned by configuration), turns its claims into a
 * struct auth_claims, and answers "may this token subscribe to / run / read
 * metrics".  Also the pure pieces of the request path: choosing the token
 * from the Authorization header, the aegis_token cookie or ?access_token=,
 * and redacting it from anything that is logged.
 */
#ifndef AEGIS_AUTH_H
#define AEGIS_AUTH_H

#include <stddef.h>
#include <time.h>

#define AUTH_TOKEN_MAX 8192    /* longer tokens are refused unread */
#define AUTH_LEEWAY_SECONDS 30 /* clock skew allowed on exp, nbf, iat */
#define AUTH_COOKIE "aegis_token"
#define AUTH_QUERY_ARG "access_token"

/* Every reason a token is refused (401), each its own value. */
enum auth_result {
    AUTH_OK = 0,
    AUTH_NO_TOKEN,
    AUTH_OVERSIZED,    /* over AUTH_TOKEN_MAX bytes */
    AUTH_MALFORMED,    /* not three base64url parts */
    AUTH_BAD_HEADER,   /* header not a JSON object with a string "alg" */
    AUTH_ALG_NONE,     /* "alg": "none" */
    AUTH_ALG_MISMATCH, /* another algorithm than the configured one */
    AUTH_NOT_JSON,     /* payload not a JSON object */
    AUTH_BAD_SIGNATURE,
    AUTH_NO_EXP,
    AUTH_EXPIRED,
    AUTH_NOT_YET_VALID,    /* nbf in the future */
    AUTH_ISSUED_IN_FUTURE, /* iat in the future */
    AUTH_WRONG_AUDIENCE,
    AUTH_WRONG_ISSUER,
    AUTH_BAD_CLAIMS, /* a registered or aegis claim of the wrong type or form */
    AUTH_NO_MEMORY,
    AUTH_NRESULTS
};

/* One line saying why ("token expired"); never contains token bytes. */
const char *auth_reason(enum auth_result r);

/* The algorithms a verifier can be pinned to. */
enum auth_alg { AUTH_HS256, AUTH_HS384, AUTH_HS512, AUTH_RS256, AUTH_ES256 };
/* "HS256" → AUTH_HS256; -1 for anything else (including "none"). */
int auth_alg_parse(const char *name);
const char *auth_alg_name(enum auth_alg alg);
int auth_alg_is_hmac(enum auth_alg alg);

/* What a verified token allows. */
struct auth_claims {
    char **subscribe; /* patterns "workspace:ID", "conversation:ID*", "workspace:*" */
    size_t nsubscribe;
    char **run; /* agent types, "*" = any */
    size_t nrun;
    int metrics;   /* aegis.metrics: true */
    int all;       /* anonymous on loopback: everything allowed */
    long long exp; /* seconds since the epoch; 0: never (anonymous) */
    char *sub;     /* "sub" or NULL */
    char *json;    /* the whole claims set, compact JSON (for the SQL policy) */
};

/* The claims of "no authentication": every stream, every run, metrics. */
struct auth_claims *auth_claims_all(void);
void auth_claims_free(struct auth_claims *c);

/*
 * Key material: for HS* the file's bytes are the secret (at least 32); for
 * RS256 an RSA and for ES256 a P-256 public key in PEM.  Returns 0 and
 * *out, or -1 and *errmsg (malloc'd, names the file, never the key).
 */
struct auth_key {
    enum auth_alg alg;
    unsigned char *bytes;
    size_t len;
};
int auth_key_load(const char *path, enum auth_alg alg, struct auth_key *out, char **errmsg)
    __attribute__((warn_unused_result));
void auth_key_clear(struct auth_key *k);

struct auth_verifier;

/* audience and issuer may be NULL (not checked).  Takes over key. */
struct auth_verifier *auth_verifier_new(struct auth_key *key, const char *audience,
                                        const char *issuer);
void auth_verifier_free(struct auth_verifier *v);

/* Verifies token at time now.  AUTH_OK and *out (free with auth_claims_free),
 * or the reason it is refused (*out NULL). */
enum auth_result auth_verify(const struct auth_verifier *v, const char *token, time_t now,
                             struct auth_claims **out) __attribute__((warn_unused_result));

/* Pure: 1 if pattern ("workspace:conv-*") covers the stream kind:id.  A
 * trailing '*' matches any suffix (also the empty one only when the pattern
 * is "kind:*"); a '*' elsewhere is a literal character. */
int auth_pattern_match(const char *pattern, const char *kind, const char *id);
/* Pure: 1 if s is a well-formed subscribe pattern. */
int auth_pattern_valid(const char *s);
/* Pure: 1 if s is a well-formed run entry (an agent type or "*"). */
int auth_run_valid(const char *s);

int auth_may_subscribe(const struct auth_claims *c, const char *kind, const char *id);
/* agent_type NULL (a run without one) is the agent type "default", as
 * aegis.request_run takes it. */
#define AUTH_DEFAULT_AGENT_TYPE "default"
int auth_may_run(const struct auth_claims *c, const char *agent_type);
int auth_may_metrics(const struct auth_claims *c);

/* Where a request's token came from. */
enum auth_source { AUTH_SRC_NONE, AUTH_SRC_BEARER, AUTH_SRC_COOKIE, AUTH_SRC_QUERY };
const char *auth_source_name(enum auth_source s);

/*
 * Pure: picks the token of a request from its raw Authorization header, raw
 * Cookie header and the decoded ?access_token= value (each NULL when
 * absent), in that order of preference.  Returns a malloc'd copy (NULL when
 * there is none or on out of memory) and sets *src.  An Authorization
 * header of another scheme does not hide the cookie.
 */
char *auth_token_pick(const char *authorization, const char *cookie, const char *query_token,
                      enum auth_source *src);

/* Pure: a copy of a query string (without '?') with the value of every
 * access_token argument replaced by "[redacted]"; NULL on out of memory. */
char *auth_redact_query(const char *query);

#endif
