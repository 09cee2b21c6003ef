/*
 * auth.c: owns token verification and the claims it yields.  libjwt checks
 * the signature; before it, the token's shape and header are checked here
 * (so each refusal has its own reason and the algorithm is pinned: a header
 * naming another algorithm, or none, never reaches libjwt), after it the
 * registered claims (exp required, nbf, iat, aud, iss) and the private
 * "aegis" claim are checked with jansson.  Also the pure request helpers:
 * pattern matching, token choice, query redaction.
 */
#define _GNU_SOURCE
#include "auth.h"
#include "buf.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <libwebsockets.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_KEY_FILE_MAX 65536
#define AUTH_HMAC_MIN 32

struct auth_verifier {
    struct auth_key key;
    char *audience;
    char *issuer;
};

static const char *const auth_reasons[AUTH_NRESULTS] = {
    [AUTH_OK] = "ok",
    [AUTH_NO_TOKEN] =
        "no token (send Authorization: Bearer, the aegis_token cookie or ?access_token=)",
    [AUTH_OVERSIZED] = "token too long (over 8192 bytes)",
    [AUTH_MALFORMED] = "malformed token: not three base64url parts",
    [AUTH_BAD_HEADER] = "malformed token: header is not a JSON object with a string alg",
    [AUTH_ALG_NONE] = "unsigned token (alg none) refused",
    [AUTH_ALG_MISMATCH] = "token signed with another algorithm than the configured one",
    [AUTH_NOT_JSON] = "malformed token: payload is not a JSON object",
    [AUTH_BAD_SIGNATURE] = "bad signature",
    [AUTH_NO_EXP] = "token has no exp claim",
    [AUTH_EXPIRED] = "token expired",
    [AUTH_NOT_YET_VALID] = "token not yet valid (nbf)",
    [AUTH_ISSUED_IN_FUTURE] = "token issued in the future (iat)",
    [AUTH_WRONG_AUDIENCE] = "wrong audience (aud)",
    [AUTH_WRONG_ISSUER] = "wrong issuer (iss)",
    [AUTH_BAD_CLAIMS] = "malformed claims: exp/nbf/iat must be numbers, aegis an object with "
                        "subscribe and run arrays of strings and metrics a boolean",
    [AUTH_NO_MEMORY] = "out of memory",
};

const char *auth_reason(enum auth_result r)
{
    return (r >= AUTH_OK && r < AUTH_NRESULTS && auth_reasons[r]) ? auth_reasons[r] : "refused";
}

/* ---------- algorithms ---------- */

static const struct {
    const char *name;
    enum auth_alg alg;
    jwt_alg_t jwt;
} auth_algs[] = { { "HS256", AUTH_HS256, JWT_ALG_HS256 },
                  { "HS384", AUTH_HS384, JWT_ALG_HS384 },
                  { "HS512", AUTH_HS512, JWT_ALG_HS512 },
                  { "RS256", AUTH_RS256, JWT_ALG_RS256 },
                  { "ES256", AUTH_ES256, JWT_ALG_ES256 } };

#define AUTH_NALGS (sizeof auth_algs / sizeof auth_algs[0])

int auth_alg_parse(const char *name)
{
    size_t i;

    for (i = 0; name && i < AUTH_NALGS; i++) {
        if (!strcmp(name, auth_algs[i].name))
            return (int)auth_algs[i].alg;
    }
    return -1;
}

const char *auth_alg_name(enum auth_alg alg)
{
    return (size_t)alg < AUTH_NALGS ? auth_algs[alg].name : "?";
}

int auth_alg_is_hmac(enum auth_alg alg)
{
    return alg == AUTH_HS256 || alg == AUTH_HS384 || alg == AUTH_HS512;
}

static jwt_alg_t auth_alg_jwt(enum auth_alg alg)
{
    return (size_t)alg < AUTH_NALGS ? auth_algs[alg].jwt : JWT_ALG_INVAL;
}

/* ---------- keys ---------- */


static int auth_read_file(const char *path, unsigned char **out, size_t *len, char **errmsg)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n;

    if (!f)
        return buf_fail(errmsg, -1, "cannot read key file '%s': %s", path, strerror(errno));
    buf = malloc(AUTH_KEY_FILE_MAX + 1);
    if (!buf)
        goto err;
    n = fread(buf, 1, AUTH_KEY_FILE_MAX + 1, f);
    if (ferror(f) || n > AUTH_KEY_FILE_MAX) {
        fclose(f);
        free(buf);
        return buf_fail(errmsg, -1, "cannot read key file '%s': %s", path,
                         n > AUTH_KEY_FILE_MAX ? "larger than 64 KiB" : "read error");
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
err:
    fclose(f);
    return buf_fail(errmsg, -1, "out of memory");
}

/* a PEM public key of the kind alg needs (RSA; EC on P-256) */
static int auth_pem_check(const char *path, enum auth_alg alg, const unsigned char *pem, size_t len,
                          char **errmsg)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    char group[64] = "";
    size_t glen = 0;
    int ok;

    BIO_free(bio);
    if (!pk)
        return buf_fail(errmsg, -1, "key file '%s' is not a PEM public key (%s needs one)", path,
                         auth_alg_name(alg));
    if (alg == AUTH_RS256)
        ok = EVP_PKEY_base_id(pk) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) >= 2048;
    else
        ok = EVP_PKEY_base_id(pk) == EVP_PKEY_EC
             && EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) == 1
             && !strcmp(group, "prime256v1");
    EVP_PKEY_free(pk);
    if (!ok)
        return buf_fail(errmsg, -1, "key file '%s' is not %s", path,
                         alg == AUTH_RS256 ? "an RSA public key of at least 2048 bits (RS256)"
                                           : "an EC P-256 public key (ES256)");
    return 0;
}

int auth_key_load(const char *path, enum auth_alg alg, struct auth_key *out, char **errmsg)
{
    unsigned char *bytes = NULL;
    size_t len = 0;

    if (errmsg)
        *errmsg = NULL;
    memset(out, 0, sizeof *out);
    if (auth_read_file(path, &bytes, &len, errmsg) < 0)
        return -1;
    if (auth_alg_is_hmac(alg) && len < AUTH_HMAC_MIN) {
        free(bytes);
        return buf_fail(errmsg, -1, "key file '%s' holds %zu bytes: an %s secret needs at least %d",
                         path, len, auth_alg_name(alg), AUTH_HMAC_MIN);
    }
    if (!auth_alg_is_hmac(alg) && auth_pem_check(path, alg, bytes, len, errmsg) < 0) {
        free(bytes);
        return -1;
    }
    out->alg = alg;
    out->bytes = bytes;
    out->len = len;
    return 0;
}

void auth_key_clear(struct auth_key *k)
{
    if (k->bytes) {
        explicit_bzero(k->bytes, k->len);
        free(k->bytes);
    }
    memset(k, 0, sizeof *k);
}

struct auth_verifier *auth_verifier_new(struct auth_key *key, const char *audience,
                                        const char *issuer)
{
    struct auth_verifier *v = calloc(1, sizeof *v);

    if (!v)
        return NULL;
    if ((audience && !(v->audience = strdup(audience)))
        || (issuer && !(v->issuer = strdup(issuer)))) {
        free(v->audience);
        free(v);
        return NULL;
    }
    v->key = *key;
    memset(key, 0, sizeof *key);
    return v;
}

void auth_verifier_free(struct auth_verifier *v)
{
    if (!v)
        return;
    auth_key_clear(&v->key);
    free(v->audience);
    free(v->issuer);
    free(v);
}

/* ---------- claims ---------- */

void auth_claims_free(struct auth_claims *c)
{
    size_t i;

    if (!c)
        return;
    for (i = 0; i < c->nsubscribe; i++)
        free(c->subscribe[i]);
    for (i = 0; i < c->nrun; i++)
        free(c->run[i]);
    free(c->subscribe);
    free(c->run);
    free(c->sub);
    free(c->json);
    free(c);
}

struct auth_claims *auth_claims_all(void)
{
    struct auth_claims *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->all = 1;
    c->metrics = 1;
    c->json = strdup("{}");
    if (!c->json) {
        free(c);
        return NULL;
    }
    return c;
}

/* an array of strings each accepted by ok() into *v; -1 if of another form */
static int auth_strv_from(json_t *arr, int (*ok)(const char *), char ***v, size_t *n)
{
    size_t i, count;
    json_t *e;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return -1;
    count = json_array_size(arr);
    if (count > 1024 || !(*v = calloc(count ? count : 1, sizeof **v)))
        return -1;
    json_array_foreach(arr, i, e) {
        if (!json_is_string(e) || !ok(json_string_value(e)))
            return -1;
        if (!((*v)[i] = strdup(json_string_value(e))))
            return -1;
        *n = i + 1;
    }
    return 0;
}

static enum auth_result auth_aegis_claim(json_t *aegis, struct auth_claims *c)
{
    json_t *m;

    if (!aegis)
        return AUTH_OK; /* a valid token that grants nothing */
    if (!json_is_object(aegis))
        return AUTH_BAD_CLAIMS;
    if (auth_strv_from(json_object_get(aegis, "subscribe"), auth_pattern_valid, &c->subscribe,
                       &c->nsubscribe)
            < 0
        || auth_strv_from(json_object_get(aegis, "run"), auth_run_valid, &c->run, &c->nrun) < 0)
        return AUTH_BAD_CLAIMS;
    m = json_object_get(aegis, "metrics");
    if (m && !json_is_boolean(m))
        return AUTH_BAD_CLAIMS;
    c->metrics = json_is_true(m);
    return AUTH_OK;
}

/* a NumericDate claim: 0 absent, 1 present (*out), -1 of another type */
static int auth_numeric(json_t *o, const char *name, long long *out)
{
    json_t *v = json_object_get(o, name);
    double d;

    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v))
        return -1;
    d = json_real_value(v);
    if (!(d > -9.2e18 && d < 9.2e18))
        return -1;
    *out = (long long)d;
    return 1;
}

static enum auth_result auth_times(json_t *o, time_t now, struct auth_claims *c)
{
    long long exp = 0, nbf = 0, iat = 0;
    int has_exp = auth_numeric(o, "exp", &exp), has_nbf = auth_numeric(o, "nbf", &nbf),
        has_iat = auth_numeric(o, "iat", &iat);

    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return AUTH_BAD_CLAIMS;
    if (!has_exp)
        return AUTH_NO_EXP;
    if ((long long)now > exp + AUTH_LEEWAY_SECONDS)
        return AUTH_EXPIRED;
    if (has_nbf && nbf > (long long)now + AUTH_LEEWAY_SECONDS)
        return AUTH_NOT_YET_VALID;
    if (has_iat && iat > (long long)now + AUTH_LEEWAY_SECONDS)
        return AUTH_ISSUED_IN_FUTURE;
    c->exp = exp;
    return AUTH_OK;
}

static enum auth_result auth_audience(json_t *o, const char *want)
{
    json_t *aud = json_object_get(o, "aud"), *e;
    size_t i;

    if (!want)
        return (aud && !json_is_string(aud) && !json_is_array(aud)) ? AUTH_BAD_CLAIMS : AUTH_OK;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) ? AUTH_WRONG_AUDIENCE : AUTH_OK;
    if (json_is_array(aud)) {
        json_array_foreach(aud, i, e) {
            if (json_is_string(e) && !strcmp(json_string_value(e), want))
                return AUTH_OK;
        }
    }
    return AUTH_WRONG_AUDIENCE;
}

static enum auth_result auth_issuer(json_t *o, const char *want)
{
    json_t *iss = json_object_get(o, "iss");

    if (iss && !json_is_string(iss))
        return AUTH_BAD_CLAIMS;
    if (want && (!iss || strcmp(json_string_value(iss), want)))
        return AUTH_WRONG_ISSUER;
    return AUTH_OK;
}

static enum auth_result auth_claims_from(const struct auth_verifier *v, const char *text,
                                         time_t now, struct auth_claims **out)
{
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, NULL), *sub;
    struct auth_claims *c = calloc(1, sizeof *c);
    enum auth_result r = AUTH_NO_MEMORY;

    if (!o || !json_is_object(o)) {
        r = AUTH_NOT_JSON;
        goto err;
    }
    if (!c)
        goto err;
    if ((r = auth_times(o, now, c)) != AUTH_OK || (r = auth_audience(o, v->audience)) != AUTH_OK
        || (r = auth_issuer(o, v->issuer)) != AUTH_OK
        || (r = auth_aegis_claim(json_object_get(o, "aegis"), c)) != AUTH_OK)
        goto err;
    sub = json_object_get(o, "sub");
    if (sub && !json_is_string(sub)) {
        r = AUTH_BAD_CLAIMS;
        goto err;
    }
    r = AUTH_NO_MEMORY;
    if ((sub && !(c->sub = strdup(json_string_value(sub))))
        || !(c->json = json_dumps(o, JSON_COMPACT)))
        goto err;
    json_decref(o);
    *out = c;
    return AUTH_OK;
err:
    json_decref(o);
    auth_claims_free(c);
    return r;
}

/* ---------- the token's shape ---------- */

static int auth_b64url_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
           || ch == '-' || ch == '_';
}

/* splits "h.p.s" into three base64url parts (s may be empty); -1 otherwise */
static int auth_split(const char *t, size_t len, size_t part_off[3], size_t part_len[3])
{
    size_t i, k = 0, start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && t[i] != '.') {
            if (!auth_b64url_char(t[i]))
                return -1;
            continue;
        }
        if (k == 3)
            return -1;
        part_off[k] = start;
        part_len[k] = i - start;
        if (part_len[k] % 4 == 1)
            return -1; /* no base64 ends with one character */
        k++;
        start = i + 1;
    }
    return (k == 3 && part_len[0] > 0 && part_len[1] > 0) ? 0 : -1;
}

/* decodes one base64url part (lws) and parses it as a JSON object (jansson) */
static json_t *auth_part_json(const char *part, size_t len)
{
    size_t cap = len / 4 * 3 + 8; /* lws writes whole quads, then a NUL */
    char *buf = malloc(cap);
    json_t *o = NULL;
    int n;

    if (!buf)
        return NULL;
    n = lws_b64_decode_string_len(part, (int)len, buf, (int)cap);
    if (n >= 0 && (size_t)n == len * 3 / 4) {
        o = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
        if (o && !json_is_object(o)) {
            json_decref(o);
            o = NULL;
        }
    }
    free(buf);
    return o;
}

/* shape, header and algorithm, before any cryptography */
static enum auth_result auth_precheck(const struct auth_verifier *v, const char *token)
{
    size_t len = strlen(token), off[3], plen[3];
    json_t *head, *body, *alg;
    enum auth_result r = AUTH_OK;

    if (len > AUTH_TOKEN_MAX)
        return AUTH_OVERSIZED;
    if (auth_split(token, len, off, plen) < 0)
        return AUTH_MALFORMED;
    head = auth_part_json(token + off[0], plen[0]);
    alg = head ? json_object_get(head, "alg") : NULL;
    if (!json_is_string(alg))
        r = AUTH_BAD_HEADER;
    else if (!strcasecmp(json_string_value(alg), "none"))
        r = AUTH_ALG_NONE;
    else if (strcmp(json_string_value(alg), auth_alg_name(v->key.alg)))
        r = AUTH_ALG_MISMATCH;
    json_decref(head);
    if (r != AUTH_OK)
        return r;
    body = auth_part_json(token + off[1], plen[1]);
    if (!body)
        return AUTH_NOT_JSON;
    json_decref(body);
    return plen[2] > 0 ? AUTH_OK : AUTH_BAD_SIGNATURE;
}

enum auth_result auth_verify(const struct auth_verifier *v, const char *token, time_t now,
                             struct auth_claims **out)
{
    jwt_t *jwt = NULL;
    char *grants;
    enum auth_result r;

    *out = NULL;
    if (!token || !*token)
        return AUTH_NO_TOKEN;
    if ((r = auth_precheck(v, token)) != AUTH_OK)
        return r;
    /* libjwt 1.10 verifies with whatever algorithm the header names: the
     * precheck pinned it, and it is checked again on what libjwt decoded */
    if (jwt_decode(&jwt, token, v->key.bytes, (int)v->key.len) != 0 || !jwt)
        return AUTH_BAD_SIGNATURE;
    if (jwt_get_alg(jwt) != auth_alg_jwt(v->key.alg)) {
        jwt_free(jwt);
        return AUTH_ALG_MISMATCH;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    if (!grants)
        return AUTH_NOT_JSON;
    r = auth_claims_from(v, grants, now, out);
    free(grants);
    return r;
}

/* ---------- patterns ---------- */

static int auth_id_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
           || ch == '_' || ch == '.' || ch == ':' || ch == '-' || ch == '*';
}

/* the part after "workspace:" / "conversation:"; NULL if neither */
static const char *auth_pattern_rest(const char *p, const char **kind, size_t *kind_len)
{
    static const char *const kinds[] = { "workspace", "conversation" };
    size_t i, n;

    for (i = 0; i < 2; i++) {
        n = strlen(kinds[i]);
        if (!strncmp(p, kinds[i], n) && p[n] == ':') {
            *kind = kinds[i];
            *kind_len = n;
            return p + n + 1;
        }
    }
    return NULL;
}

int auth_pattern_valid(const char *s)
{
    const char *kind, *rest;
    size_t kl, i, n;

    if (!s || !(rest = auth_pattern_rest(s, &kind, &kl)))
        return 0;
    n = strlen(rest);
    if (n < 1 || n > 129)
        return 0;
    for (i = 0; i < n; i++) {
        if (!auth_id_char(rest[i]))
            return 0;
    }
    return 1;
}

int auth_run_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n < 1 || n > 128)
        return 0;
    if (!strcmp(s, "*"))
        return 1;
    for (i = 0; i < n; i++) {
        if (!auth_id_char(s[i]) || s[i] == '*')
            return 0;
    }
    return 1;
}

int auth_pattern_match(const char *pattern, const char *kind, const char *id)
{
    const char *pk, *rest;
    size_t kl, n;

    if (!pattern || !kind || !id || !*id || !(rest = auth_pattern_rest(pattern, &pk, &kl))
        || strcmp(pk, kind))
        return 0;
    n = strlen(rest);
    if (n == 1 && rest[0] == '*')
        return 1;
    if (n > 1 && rest[n - 1] == '*') /* "conv-*": a prefix and at least one more */
        return strlen(id) > n - 1 && !strncmp(id, rest, n - 1);
    return !strcmp(rest, id);
}

int auth_may_subscribe(const struct auth_claims *c, const char *kind, const char *id)
{
    size_t i;

    if (!c)
        return 0;
    if (c->all)
        return 1;
    for (i = 0; i < c->nsubscribe; i++) {
        if (auth_pattern_match(c->subscribe[i], kind, id))
            return 1;
    }
    return 0;
}

int auth_may_run(const struct auth_claims *c, const char *agent_type)
{
    size_t i;

    if (!c)
        return 0;
    if (c->all)
        return 1;
    if (!agent_type)
        agent_type = AUTH_DEFAULT_AGENT_TYPE; /* what aegis.request_run runs then */
    for (i = 0; i < c->nrun; i++) {
        if (!strcmp(c->run[i], "*") || !strcmp(c->run[i], agent_type))
            return 1;
    }
    return 0;
}

int auth_may_metrics(const struct auth_claims *c)
{
    return c && (c->all || c->metrics);
}

/* ---------- where the token comes from ---------- */

const char *auth_source_name(enum auth_source s)
{
    static const char *const names[] = { "none", "bearer", "cookie", "query" };

    return (s >= AUTH_SRC_NONE && s <= AUTH_SRC_QUERY) ? names[s] : "none";
}

static int auth_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* "Bearer <token>": the token's start and length, or NULL */
static const char *auth_bearer(const char *h, size_t *len)
{
    const char *p, *end;

    if (!h)
        return NULL;
    while (auth_space(*h))
        h++;
    if (strncasecmp(h, "Bearer", 6) || !auth_space(h[6]))
        return NULL;
    for (p = h + 6; auth_space(*p); p++)
        ;
    for (end = p; *end && !auth_space(*end); end++)
        ;
    *len = (size_t)(end - p);
    return *len ? p : NULL;
}

/* the value of cookie name in a Cookie header ("a=1; b=2"), or NULL */
static const char *auth_cookie(const char *h, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = h, *end;

    while (p && *p) {
        while (auth_space(*p) || *p == ';')
            p++;
        end = strchr(p, ';');
        if (!end)
            end = p + strlen(p);
        if ((size_t)(end - p) > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            p += nl + 1;
            while (end > p && auth_space(end[-1]))
                end--;
            if (end - p >= 2 && *p == '"' && end[-1] == '"')
                p++, end--;
            *len = (size_t)(end - p);
            return *len ? p : NULL;
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

char *auth_token_pick(const char *authorization, const char *cookie, const char *query_token,
                      enum auth_source *src)
{
    const char *t;
    size_t len = 0;

    *src = AUTH_SRC_NONE;
    if ((t = auth_bearer(authorization, &len)))
        *src = AUTH_SRC_BEARER;
    else if (cookie && (t = auth_cookie(cookie, AUTH_COOKIE, &len)))
        *src = AUTH_SRC_COOKIE;
    else if (query_token && *query_token)
        *src = AUTH_SRC_QUERY, t = query_token, len = strlen(query_token);
    else
        return NULL;
    return strndup(t, len);
}

char *auth_redact_query(const char *query)
{
    static const char mask[] = "[redacted]";
    size_t nl = strlen(AUTH_QUERY_ARG), i = 0, n = strlen(query), o = 0;
    char *out = malloc(n + sizeof mask * (n / (nl + 1) + 1) + 1);
    int at_start = 1;

    if (!out)
        return NULL;
    while (i < n) {
        if (at_start && !strncmp(query + i, AUTH_QUERY_ARG, nl) && query[i + nl] == '=') {
            memcpy(out + o, query + i, nl + 1);
            o += nl + 1;
            memcpy(out + o, mask, sizeof mask - 1);
            o += sizeof mask - 1;
            i += nl + 1;
            while (i < n && query[i] != '&')
                i++;
            at_start = 0;
            continue;
        }
        at_start = query[i] == '&';
        out[o++] = query[i++];
    }
    out[o] = '\0';
    return out;
}
