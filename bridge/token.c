/*
 * token.c: owns `aegis-bridge token`: its flags, the claims it builds
 * ({"aegis": {"subscribe", "run", "metrics"}, "sub", "iat", "exp", "aud",
 * "iss"}) and signing them with libjwt.  HS* secrets only: asymmetric
 * tokens are the identity provider's business.
 */
#define _GNU_SOURCE
#include "token.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define TOKEN_TTL_MAX 31536000L /* one year */

struct token_opts {
    const char *key_file;
    const char *alg;
    const char *sub, *aud, *iss;
    long ttl;
    int metrics;
    json_t *subscribe, *run;
};

long token_parse_ttl(const char *s)
{
    char *end;
    long v, mult = 1;

    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || v <= 0)
        return -1;
    if (*end && end[1])
        return -1;
    switch (*end) {
    case '\0':
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return -1;
    }
    if (v > TOKEN_TTL_MAX / mult)
        return -1;
    return v * mult;
}

char *token_sign(const struct auth_key *key, const char *claims_json)
{
    jwt_t *jwt = NULL;
    jwt_alg_t alg = key->alg == AUTH_HS384   ? JWT_ALG_HS384
                    : key->alg == AUTH_HS512 ? JWT_ALG_HS512
                                             : JWT_ALG_HS256;
    char *out = NULL;

    if (!auth_alg_is_hmac(key->alg) || jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, claims_json) == 0
        && jwt_set_alg(jwt, alg, key->bytes, (int)key->len) == 0)
        out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

static const char token_usage[] =
    "usage: aegis-bridge token --key FILE [--alg HS256|HS384|HS512]\n"
    "           [--subscribe workspace:ID|conversation:ID]... [--run AGENT_TYPE|*]...\n"
    "           [--metrics] [--sub NAME] [--ttl 1h] [--aud AUDIENCE] [--iss ISSUER]\n"
    "Prints a token signed with the secret in FILE (the bridge's --auth-jwt-key).\n"
    "A pattern's trailing * matches any suffix; --ttl takes s, m, h or d (default 1h).\n";

/* one flag with its value; returns an error text or NULL */
static const char *token_flag(struct token_opts *o, const char *flag, const char *val)
{
    if (!strcmp(flag, "--key"))
        o->key_file = val;
    else if (!strcmp(flag, "--alg"))
        o->alg = val;
    else if (!strcmp(flag, "--sub"))
        o->sub = val;
    else if (!strcmp(flag, "--aud"))
        o->aud = val;
    else if (!strcmp(flag, "--iss"))
        o->iss = val;
    else if (!strcmp(flag, "--ttl")) {
        if ((o->ttl = token_parse_ttl(val)) < 0)
            return "--ttl must be a positive number of s, m, h or d of at most a year";
    } else if (!strcmp(flag, "--subscribe")) {
        if (!auth_pattern_valid(val))
            return "--subscribe must be workspace:ID or conversation:ID (ID of [A-Za-z0-9_.:-], "
                   "a trailing * for any suffix, or * alone)";
        json_array_append_new(o->subscribe, json_string(val));
    } else if (!strcmp(flag, "--run")) {
        if (!auth_run_valid(val))
            return "--run must be an agent type of [A-Za-z0-9_.:-]{1,128} or *";
        json_array_append_new(o->run, json_string(val));
    } else
        return "unknown option";
    return NULL;
}

/* 0 to go on, -1 after --help (exit 0), 2 on bad flags */
static int token_parse_args(struct token_opts *o, int argc, char **argv, FILE *out, FILE *err)
{
    const char *e;
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(token_usage, out);
            return -1;
        }
        if (!strcmp(argv[i], "--metrics")) {
            o->metrics = 1;
            continue;
        }
        if (strncmp(argv[i], "--", 2) || i + 1 >= argc) {
            fprintf(err, "aegis-bridge token: %s '%s'\n%s",
                    strncmp(argv[i], "--", 2) ? "unexpected argument" : "missing value for",
                    argv[i], token_usage);
            return 2;
        }
        if ((e = token_flag(o, argv[i], argv[i + 1]))) {
            fprintf(err, "aegis-bridge token: %s: %s\n", argv[i], e);
            return 2;
        }
        i++;
    }
    if (!o->key_file) {
        fprintf(err, "aegis-bridge token: --key FILE is required\n%s", token_usage);
        return 2;
    }
    return 0;
}

static char *token_claims(const struct token_opts *o, time_t now)
{
    json_t *c = json_object(), *aegis = json_object();
    char *text = NULL;

    if (!c || !aegis)
        goto out;
    json_object_set(aegis, "subscribe", o->subscribe);
    json_object_set(aegis, "run", o->run);
    json_object_set_new(aegis, "metrics", json_boolean(o->metrics));
    json_object_set(c, "aegis", aegis);
    json_object_set_new(c, "iat", json_integer((json_int_t)now));
    json_object_set_new(c, "exp", json_integer((json_int_t)now + o->ttl));
    if (o->sub)
        json_object_set_new(c, "sub", json_string(o->sub));
    if (o->aud)
        json_object_set_new(c, "aud", json_string(o->aud));
    if (o->iss)
        json_object_set_new(c, "iss", json_string(o->iss));
    text = json_dumps(c, JSON_COMPACT);
out:
    json_decref(aegis);
    json_decref(c);
    return text;
}

static int token_run(const struct token_opts *o, FILE *out, FILE *err)
{
    struct auth_key key;
    char *msg = NULL, *claims = NULL, *tok = NULL;
    int alg = auth_alg_parse(o->alg), rc = 1;

    if (alg < 0 || !auth_alg_is_hmac((enum auth_alg)alg)) {
        fprintf(err, "aegis-bridge token: --alg must be HS256, HS384 or HS512 (minting signs with "
                     "the shared secret only)\n");
        return 2;
    }
    if (auth_key_load(o->key_file, (enum auth_alg)alg, &key, &msg) < 0) {
        fprintf(err, "aegis-bridge token: %s\n", msg ? msg : "out of memory");
        free(msg);
        return 2;
    }
    claims = token_claims(o, time(NULL));
    tok = claims ? token_sign(&key, claims) : NULL;
    if (tok) {
        fprintf(out, "%s\n", tok);
        rc = 0;
    } else {
        fprintf(err, "aegis-bridge token: cannot sign the token\n");
    }
    free(tok);
    free(claims);
    auth_key_clear(&key);
    return rc;
}

int token_main(int argc, char **argv, FILE *out, FILE *err)
{
    struct token_opts o;
    int rc;

    memset(&o, 0, sizeof o);
    o.alg = "HS256";
    o.ttl = 3600;
    o.subscribe = json_array();
    o.run = json_array();
    if (!o.subscribe || !o.run)
        rc = 1;
    else if ((rc = token_parse_args(&o, argc, argv, out, err)) == 0)
        rc = token_run(&o, out, err);
    else if (rc < 0)
        rc = 0; /* --help */
    json_decref(o.subscribe);
    json_decref(o.run);
    return rc;
}
