/*
 * bridge_auth: libFuzzer target for the bridge's authorization (auth.c):
 * the JWT claim checks after libjwt's parse, the subscribe/run pattern
 * matching on arbitrary claims, the token's extraction from a request's
 * Authorization and Cookie headers and ?access_token=, and its redaction
 * from logged query strings.  The first byte picks:
 *   0  claims: the rest is a JWT payload (any bytes), signed here with the
 *      verifier's HS256 secret so that it passes the signature and reaches
 *      the claim checks; a verified token's grants are then asked about
 *      streams and runs read off the claims themselves, and compared with
 *      the pattern rule written out again here;
 *   1  token extraction: three strings (Authorization, Cookie, the query
 *      value): the token picked is a part of the one its source names;
 *   2  redaction: a query string; every access_token value comes back as
 *      [redacted] and every other argument as it was;
 *   3  a raw token (any bytes) to auth_verify: refused with a reason that
 *      holds no byte of it, or accepted only if signed.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "fuzz_bytes.h"

#define SECRET "fuzz-secret-fuzz-secret-fuzz-secret-0123456789"
#define NOW 1700000000

static struct auth_verifier *verifier(void)
{
    static struct auth_verifier *v;

    if (!v) {
        struct auth_key key;
        key.alg = AUTH_HS256;
        key.len = strlen(SECRET);
        key.bytes = (unsigned char *)strdup(SECRET);
        v = auth_verifier_new(&key, NULL, NULL);
        if (!v)
            fuzz_fail("no verifier", NULL);
    }
    return v;
}

static char *b64url(const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(4 * (n / 3 + 1) + 1), *o = out;
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = t[v >> 18], *o++ = t[(v >> 12) & 63], *o++ = t[(v >> 6) & 63], *o++ = t[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = t[v >> 18], *o++ = t[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *o++ = t[v >> 18], *o++ = t[(v >> 12) & 63], *o++ = t[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

/* header.payload.signature, HS256 with SECRET */
static char *sign(const unsigned char *payload, size_t n)
{
    static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *h = b64url((const unsigned char *)head, strlen(head)), *p = b64url(payload, n), *s, *tok;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t len = strlen(h) + strlen(p) + 1;
    char *input = malloc(len + 1);

    snprintf(input, len + 1, "%s.%s", h, p);
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)input, strlen(input), mac, &maclen);
    s = b64url(mac, maclen);
    tok = malloc(strlen(input) + strlen(s) + 2);
    sprintf(tok, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    free(input);
    return tok;
}

/* the pattern rule: "kind:id" exactly, "kind:prefix*" (prefix and at least
 * one more character), "kind:*" any id; ids are never empty */
static int pattern_rule(const char *pattern, const char *kind, const char *id)
{
    const char *colon = strchr(pattern, ':');
    size_t kl, n;
    const char *rest;

    if (!colon || !*id)
        return 0;
    kl = (size_t)(colon - pattern);
    if (kl != strlen(kind) || strncmp(pattern, kind, kl))
        return 0;
    rest = colon + 1;
    n = strlen(rest);
    if (n == 1 && rest[0] == '*')
        return 1;
    if (n > 1 && rest[n - 1] == '*')
        return strlen(id) > n - 1 && !strncmp(id, rest, n - 1);
    return !strcmp(rest, id);
}

static void ask(const struct auth_claims *c, const char *kind, const char *id)
{
    int want = 0;

    for (size_t i = 0; i < c->nsubscribe; i++)
        want |= pattern_rule(c->subscribe[i], kind, id);
    if (auth_may_subscribe(c, kind, id) != want)
        fuzz_fail("auth_may_subscribe disagrees with the pattern rule", id);
}

static void check_claims(const unsigned char *data, size_t size)
{
    char *tok = sign(data, size);
    struct auth_claims *c = NULL;
    enum auth_result r = auth_verify(verifier(), tok, NOW, &c);

    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "claims: %s\n", auth_reason(r));
    if (r < AUTH_OK || r >= AUTH_NRESULTS || (r == AUTH_OK) != (c != NULL))
        fuzz_fail("a verify result out of range or without its claims", NULL);
    if (r == AUTH_OK) {
        if (c->all || (c->exp && c->exp + AUTH_LEEWAY_SECONDS < NOW))
            fuzz_fail("an expired token or one allowing all accepted", NULL);
        for (size_t i = 0; i < c->nsubscribe; i++) {
            const char *colon;
            if (!auth_pattern_valid(c->subscribe[i]))
                fuzz_fail("an invalid subscribe pattern granted", c->subscribe[i]);
            /* ask about the pattern's own id, and its neighbours */
            if ((colon = strchr(c->subscribe[i], ':'))) {
                char kind[64], *id = strdup(colon + 1);
                size_t kl = (size_t)(colon - c->subscribe[i]);
                if (kl < sizeof kind) {
                    memcpy(kind, c->subscribe[i], kl);
                    kind[kl] = '\0';
                    ask(c, kind, id);
                    if (*id && id[strlen(id) - 1] == '*') {
                        id[strlen(id) - 1] = '\0';
                        ask(c, kind, id);
                        ask(c, kind, "x");
                    }
                    ask(c, "workspace", id);
                    ask(c, "conversation", id);
                }
                free(id);
            }
        }
        for (size_t i = 0; i < c->nrun; i++) {
            if (!auth_run_valid(c->run[i]))
                fuzz_fail("an invalid run entry granted", c->run[i]);
            if (!auth_may_run(c, c->run[i]) && strcmp(c->run[i], "*"))
                fuzz_fail("a granted run type refused", c->run[i]);
        }
        if (auth_may_metrics(c) != c->metrics)
            fuzz_fail("metrics allowed otherwise than granted", NULL);
        auth_claims_free(c);
    }
    free(tok);
}

static void check_pick(struct fuzz_bytes *f)
{
    char *a = fuzz_cstr(f, 300), *k = fuzz_cstr(f, 300), *q = fuzz_cstr(f, 300);
    unsigned nulls = fuzz_u8(f);
    const char *ah = nulls & 1 ? NULL : a, *ck = nulls & 2 ? NULL : k, *qv = nulls & 4 ? NULL : q;
    enum auth_source src = AUTH_SRC_NONE;
    char *tok = auth_token_pick(ah, ck, qv, &src);

    if ((tok == NULL) != (src == AUTH_SRC_NONE))
        fuzz_fail("a token without a source, or a source without a token", NULL);
    if (tok) {
        const char *from = src == AUTH_SRC_BEARER ? ah : src == AUTH_SRC_COOKIE ? ck
                         : src == AUTH_SRC_QUERY ? qv : NULL;
        if (!from || !*tok || !strstr(from, tok) || strlen(tok) > AUTH_TOKEN_MAX)
            fuzz_fail("a token that is not a part of its source", tok);
    }
    free(tok);
    free(a);
    free(k);
    free(q);
}

static void check_redact(const unsigned char *data, size_t size)
{
    char *q = strndup((const char *)data, size);
    char *r = auth_redact_query(q);
    char *qs = NULL, *rs = NULL, *qa, *ra;

    if (!r)
        fuzz_fail("no redacted query", NULL);
    /* argument by argument: names kept, access_token values redacted */
    qa = strtok_r(q, "&", &qs);
    ra = strtok_r(r, "&", &rs);
    for (; qa && ra; qa = strtok_r(NULL, "&", &qs), ra = strtok_r(NULL, "&", &rs)) {
        size_t nl = strcspn(qa, "=");
        if (!strncmp(qa, AUTH_QUERY_ARG, nl) && nl == strlen(AUTH_QUERY_ARG) && qa[nl] == '=') {
            if (strncmp(ra, AUTH_QUERY_ARG "=[redacted]", strlen(AUTH_QUERY_ARG "=[redacted]")) ||
                ra[strlen(AUTH_QUERY_ARG "=[redacted]")] != '\0')
                fuzz_fail("an access_token value not redacted", NULL);
        } else if (strcmp(qa, ra)) {
            fuzz_fail("another argument changed by the redaction", qa);
        }
    }
    if (qa || ra)
        fuzz_fail("arguments added or lost by the redaction", NULL);
    free(q);
    free(r);
}

static void check_raw(const unsigned char *data, size_t size)
{
    char *tok = strndup((const char *)data, size);
    struct auth_claims *c = NULL;
    enum auth_result r = auth_verify(verifier(), tok, NOW, &c);
    const char *why = auth_reason(r);

    if (r < AUTH_OK || r >= AUTH_NRESULTS || !why || !*why)
        fuzz_fail("a verify result out of range or without a reason", NULL);
    if (r == AUTH_OK)
        auth_claims_free(c);        /* the fuzzer signed it: possible only by chance */
    else if (strlen(tok) >= 6 && strstr(why, tok))
        fuzz_fail("a reason that holds the token", why);
    free(tok);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct fuzz_bytes f = { data, size };

    switch (fuzz_u8(&f) % 4) {
    case 0:
        check_claims(f.p, f.n);
        break;
    case 1:
        check_pick(&f);
        break;
    case 2:
        check_redact(f.p, f.n);
        break;
    default:
        check_raw(f.p, f.n);
    }
    return 0;
}
