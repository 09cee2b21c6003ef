/*
 * auth_test.c: unit tests of auth.c and token.c: every refusal class of a
 * token, each its own case, on HS256, RS256 and ES256 verifiers (keys made
 * by the openssl command in a temporary directory at test time), pattern
 * matching, token choice from header/cookie/query, query redaction, and
 * the minting command's flags.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <jwt.h>
#include <libwebsockets.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "token.h"

#include "check.h"

#define NOW 1790000000L

static char dir[64];
static char secret_path[128], short_path[128], rsa_pub[128], rsa_priv[128], ec_pub[128],
    ec_priv[128], rsa_other_priv[128], ec_other_priv[128];

static int sh(const char *fmt, const char *arg)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, fmt, arg, arg);
    return system(cmd);
}

static int make_keys(void)
{
    FILE *f;

    strcpy(dir, "/tmp/aegis-auth-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    snprintf(short_path, sizeof short_path, "%s/short", dir);
    snprintf(rsa_priv, sizeof rsa_priv, "%s/rsa.key", dir);
    snprintf(rsa_pub, sizeof rsa_pub, "%s/rsa.pub", dir);
    snprintf(rsa_other_priv, sizeof rsa_other_priv, "%s/rsa2.key", dir);
    snprintf(ec_priv, sizeof ec_priv, "%s/ec.key", dir);
    snprintf(ec_pub, sizeof ec_pub, "%s/ec.pub", dir);
    snprintf(ec_other_priv, sizeof ec_other_priv, "%s/ec2.key", dir);
    if (!(f = fopen(secret_path, "w")))
        return -1;
    fputs("0123456789abcdef0123456789abcdef-test-secret", f);
    fclose(f);
    if (!(f = fopen(short_path, "w")))
        return -1;
    fputs("0123456789abcdef0123456789abcde", f); /* 31 bytes */
    fclose(f);
    if (sh("cd %s && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key "
           "2>/dev/null "
           "&& openssl pkey -in rsa.key -pubout -out rsa.pub",
           dir)
        || sh("cd %s && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.key "
              "2>/dev/null",
              dir)
        || sh("cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key "
              "&& openssl pkey -in ec.key -pubout -out ec.pub "
              "&& openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec2.key",
              dir))
        return -1;
    return 0;
}

static void drop_keys(void)
{
    if (dir[0])
        sh("rm -rf -- '%s'", dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 65536);
    size_t n = 0;

    if (f && buf)
        n = fread(buf, 1, 65535, f);
    if (f)
        fclose(f);
    if (len)
        *len = n;
    return buf;
}

/* a token signed with libjwt: alg, key bytes (a secret or a private key PEM) */
static char *sign(jwt_alg_t alg, const void *key, size_t klen, const char *claims)
{
    jwt_t *jwt = NULL;
    char *out = NULL;

    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims) == 0
        && jwt_set_alg(jwt, alg, key, (int)klen) == 0)
        out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

static char *sign_file(jwt_alg_t alg, const char *path, const char *claims)
{
    size_t n;
    char *k = slurp(path, &n), *t = sign(alg, k, n, claims);

    free(k);
    return t;
}

/* base64url of s, no padding */
static void b64url(const char *s, char *out, int cap)
{
    int n = lws_b64_encode_string_url(s, (int)strlen(s), out, cap);

    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
}

/* "header.payload.sig" from raw JSON texts (no real signature) */
static char *forge(const char *header, const char *payload, const char *sig)
{
    char h[1024], p[4096], *out = NULL;

    b64url(header, h, sizeof h);
    b64url(payload, p, sizeof p);
    if (asprintf(&out, "%s.%s.%s", h, p, sig) < 0)
        return NULL;
    return out;
}

/* a token signed by OpenSSL directly, not by libjwt: what another issuer
 * sends (ES256 as JOSE's 64-byte r||s, not DER) */
static char *sign_openssl(const char *alg, const char *priv_path, const char *claims)
{
    char header[64], h[128], p[1024], *input = NULL, *out = NULL, sig64[700];
    unsigned char der[600], raw[64], *sig = der;
    size_t dlen = sizeof der, slen;
    FILE *f = fopen(priv_path, "r");
    EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG *es = NULL;
    int n;

    if (f)
        fclose(f);
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    b64url(header, h, sizeof h);
    b64url(claims, p, sizeof p);
    if (!key || !md || asprintf(&input, "%s.%s", h, p) < 0
        || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1
        || EVP_DigestSign(md, der, &dlen, (unsigned char *)input, strlen(input)) != 1)
        goto out;
    slen = dlen;
    if (!strcmp(alg, "ES256")) {
        const unsigned char *q = der;
        const BIGNUM *r, *s;
        if (!(es = d2i_ECDSA_SIG(NULL, &q, (long)dlen)))
            goto out;
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, raw, 32);
        BN_bn2binpad(s, raw + 32, 32);
        sig = raw;
        slen = 64;
    }
    n = lws_b64_encode_string_url((const char *)sig, (int)slen, sig64, sizeof sig64);
    while (n > 0 && sig64[n - 1] == '=')
        sig64[--n] = '\0';
    if (asprintf(&out, "%s.%s", input, sig64) < 0)
        out = NULL;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    free(input);
    return out;
}

static struct auth_verifier *verifier(const char *path, enum auth_alg alg, const char *aud,
                                      const char *iss)
{
    struct auth_key k;
    char *err = NULL;
    struct auth_verifier *v;

    if (auth_key_load(path, alg, &k, &err) < 0) {
        printf("# key %s: %s\n", path, err ? err : "?");
        free(err);
        return NULL;
    }
    v = auth_verifier_new(&k, aud, iss);
    if (!v)
        auth_key_clear(&k);
    return v;
}

/* verifies and frees token; returns the result */
static enum auth_result verify(struct auth_verifier *v, char *token)
{
    struct auth_claims *c = NULL;
    enum auth_result r = auth_verify(v, token, NOW, &c);

    if ((r == AUTH_OK) != (c != NULL))
        r = AUTH_NRESULTS; /* inconsistent: fails every CHECK */
    auth_claims_free(c);
    free(token);
    return r;
}

static const char GOOD[] = "{\"aegis\":{\"subscribe\":[\"workspace:chk-42\",\"conversation:conv-*"
                           "\"],\"run\":[\"rule_37\"],"
                           "\"metrics\":false},\"sub\":\"user-17\",\"exp\":1790000600}";

static char *hs(const char *claims)
{
    return sign_file(JWT_ALG_HS256, secret_path, claims);
}

static void test_keys(void)
{
    struct auth_key k;
    char *err = NULL;

    CHECK("HS256 secret of 44 bytes loads",
          auth_key_load(secret_path, AUTH_HS256, &k, &err) == 0 && k.len == 44);
    auth_key_clear(&k);
    CHECK("HS256 secret of 31 bytes refused, message names the file and the minimum",
          auth_key_load(short_path, AUTH_HS256, &k, &err) < 0 && err && strstr(err, short_path)
              && strstr(err, "at least 32") && !strstr(err, "0123"));
    free(err);
    err = NULL;
    CHECK("missing key file refused", auth_key_load("/nonexistent/key", AUTH_HS256, &k, &err) < 0
                                          && err && strstr(err, "/nonexistent/key"));
    free(err);
    err = NULL;
    CHECK("RS256 public PEM loads", auth_key_load(rsa_pub, AUTH_RS256, &k, &err) == 0);
    auth_key_clear(&k);
    CHECK("RS256 with an EC key refused",
          auth_key_load(ec_pub, AUTH_RS256, &k, &err) < 0 && err && strstr(err, "RSA"));
    free(err);
    err = NULL;
    CHECK("ES256 with an RSA key refused",
          auth_key_load(rsa_pub, AUTH_ES256, &k, &err) < 0 && err && strstr(err, "P-256"));
    free(err);
    err = NULL;
    CHECK("RS256 with a secret (not PEM) refused",
          auth_key_load(secret_path, AUTH_RS256, &k, &err) < 0 && err && strstr(err, "PEM"));
    free(err);
    CHECK("algorithm names", auth_alg_parse("HS256") == AUTH_HS256
                                 && auth_alg_parse("ES256") == AUTH_ES256
                                 && auth_alg_parse("none") < 0 && auth_alg_parse("hs256") < 0
                                 && auth_alg_parse("RS512") < 0 && auth_alg_parse(NULL) < 0);
}

static void test_hs256(void)
{
    struct auth_verifier *v = verifier(secret_path, AUTH_HS256, NULL, NULL);
    struct auth_claims *c = NULL;
    char *t, *big, other[] = "another-secret-of-more-than-32-bytes-xxxxx";
    size_t i;

    CHECK("HS256 verifier", v != NULL);
    if (!v)
        return;
    t = hs(GOOD);
    CHECK("valid HS256 token accepted", auth_verify(v, t, NOW, &c) == AUTH_OK && c);
    CHECK("claims: subscribe, run, sub, exp, metrics",
          c && c->nsubscribe == 2 && !strcmp(c->subscribe[1], "conversation:conv-*") && c->nrun == 1
              && !strcmp(c->run[0], "rule_37") && c->sub && !strcmp(c->sub, "user-17")
              && c->exp == 1790000600 && !c->metrics && !c->all && c->json
              && strstr(c->json, "\"aegis\""));
    CHECK("claims cover workspace:chk-42 only",
          c && auth_may_subscribe(c, "workspace", "chk-42")
              && !auth_may_subscribe(c, "workspace", "chk-43")
              && !auth_may_subscribe(c, "conversation", "chk-42"));
    CHECK("claims cover conversation:conv-1", c && auth_may_subscribe(c, "conversation", "conv-1"));
    CHECK("run claim: rule_37 yes, other no, none (default) no",
          c && auth_may_run(c, "rule_37") && !auth_may_run(c, "rule_38") && !auth_may_run(c, NULL));
    CHECK("metrics false", c && !auth_may_metrics(c));
    auth_claims_free(c);
    free(t);

    CHECK("no token", verify(v, NULL) == AUTH_NO_TOKEN);
    CHECK("empty token", verify(v, strdup("")) == AUTH_NO_TOKEN);
    CHECK("bad signature (another secret)",
          verify(v, sign(JWT_ALG_HS256, other, strlen(other), GOOD)) == AUTH_BAD_SIGNATURE);
    t = hs(GOOD);
    t[strlen(t) - 3] = t[strlen(t) - 3] == 'A' ? 'B' : 'A';
    CHECK("bad signature (one character of it changed)", verify(v, t) == AUTH_BAD_SIGNATURE);
    CHECK("signature part empty",
          verify(v, forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD, "")) == AUTH_BAD_SIGNATURE);
    CHECK("alg none refused",
          verify(v, forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD, "")) == AUTH_ALG_NONE);
    CHECK("alg None (other case) refused",
          verify(v, forge("{\"alg\":\"None\"}", GOOD, "")) == AUTH_ALG_NONE);
    CHECK("HS512 token against an HS256 verifier refused",
          verify(v, sign_file(JWT_ALG_HS512, secret_path, GOOD)) == AUTH_ALG_MISMATCH);
    CHECK("expired (exp + 31 s ago)",
          verify(v, hs("{\"exp\":1789999969,\"aegis\":{}}")) == AUTH_EXPIRED);
    CHECK("exp 29 s ago within the leeway", verify(v, hs("{\"exp\":1789999971}")) == AUTH_OK);
    CHECK("nbf in the future (31 s)",
          verify(v, hs("{\"exp\":1790000600,\"nbf\":1790000031}")) == AUTH_NOT_YET_VALID);
    CHECK("nbf 29 s ahead within the leeway",
          verify(v, hs("{\"exp\":1790000600,\"nbf\":1790000029}")) == AUTH_OK);
    CHECK("iat in the future",
          verify(v, hs("{\"exp\":1790000600,\"iat\":1790000100}")) == AUTH_ISSUED_IN_FUTURE);
    CHECK("missing exp",
          verify(v, hs("{\"aegis\":{\"subscribe\":[\"workspace:*\"]}}")) == AUTH_NO_EXP);
    CHECK("exp a string", verify(v, hs("{\"exp\":\"1790000600\"}")) == AUTH_BAD_CLAIMS);
    CHECK("exp as a real number accepted", verify(v, hs("{\"exp\":1790000600.5}")) == AUTH_OK);
    CHECK("bad base64url (a '$')",
          verify(v, strdup("eyJhbGciOiJIUzI1NiJ9.eyJ$eHAiOjF9.c2ln")) == AUTH_MALFORMED);
    CHECK("bad base64url (standard alphabet '+')",
          verify(v, strdup("eyJhbGciOiJIUzI1NiJ9.eyJ+eHAiOjF9.c2ln")) == AUTH_MALFORMED);
    CHECK("bad base64url (length 4n+1)",
          verify(v, strdup("eyJhbGciOiJIUzI1NiJ9.eyJle.c2ln")) == AUTH_MALFORMED);
    CHECK("two parts only",
          verify(v, strdup("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9")) == AUTH_MALFORMED);
    CHECK("four parts",
          verify(v, strdup("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln.c2ln")) == AUTH_MALFORMED);
    CHECK("not a JWT at all", verify(v, strdup("hello world")) == AUTH_MALFORMED);
    CHECK("header not JSON", verify(v, forge("alg=HS256", GOOD, "c2ln")) == AUTH_BAD_HEADER);
    CHECK("header without alg",
          verify(v, forge("{\"typ\":\"JWT\"}", GOOD, "c2ln")) == AUTH_BAD_HEADER);
    CHECK("payload not JSON",
          verify(v, forge("{\"alg\":\"HS256\"}", "not json {", "c2ln")) == AUTH_NOT_JSON);
    CHECK("payload a JSON array",
          verify(v, forge("{\"alg\":\"HS256\"}", "[1,2]", "c2ln")) == AUTH_NOT_JSON);
    CHECK("payload with a duplicate key",
          verify(v, forge("{\"alg\":\"HS256\"}", "{\"exp\":1,\"exp\":2}", "c2ln"))
              == AUTH_NOT_JSON);
    CHECK("aegis not an object",
          verify(v, hs("{\"exp\":1790000600,\"aegis\":\"workspace:*\"}")) == AUTH_BAD_CLAIMS);
    CHECK("subscribe not an array",
          verify(v, hs("{\"exp\":1790000600,\"aegis\":{\"subscribe\":\"workspace:*\"}}"))
              == AUTH_BAD_CLAIMS);
    CHECK("subscribe an array with a number",
          verify(v, hs("{\"exp\":1790000600,\"aegis\":{\"subscribe\":[\"workspace:a\",7]}}"))
              == AUTH_BAD_CLAIMS);
    CHECK("subscribe entry of an unknown kind",
          verify(v, hs("{\"exp\":1790000600,\"aegis\":{\"subscribe\":[\"topic:a\"]}}"))
              == AUTH_BAD_CLAIMS);
    CHECK("run not an array of strings",
          verify(v, hs("{\"exp\":1790000600,\"aegis\":{\"run\":[true]}}")) == AUTH_BAD_CLAIMS);
    CHECK("metrics not a boolean",
          verify(v, hs("{\"exp\":1790000600,\"aegis\":{\"metrics\":\"yes\"}}")) == AUTH_BAD_CLAIMS);
    CHECK("sub not a string", verify(v, hs("{\"exp\":1790000600,\"sub\":17}")) == AUTH_BAD_CLAIMS);
    CHECK("no aegis claim: valid, grants nothing",
          auth_verify(v, (t = hs("{\"exp\":1790000600}")), NOW, &c) == AUTH_OK && c
              && !auth_may_subscribe(c, "workspace", "a") && !auth_may_run(c, "x")
              && !auth_may_metrics(c));
    auth_claims_free(c);
    free(t);
    big = malloc(9000);
    memcpy(big, "{\"exp\":1790000600,\"sub\":\"", 25);
    for (i = 25; i < 6400; i++)
        big[i] = 'x';
    strcpy(big + i, "\"}");
    t = hs(big);
    CHECK("token over 8 KiB refused before verification",
          t && strlen(t) > 8192 && verify(v, t) == AUTH_OVERSIZED);
    big[6000] = '"', big[6001] = '}', big[6002] = '\0';
    t = hs(big);
    CHECK("token just under 8 KiB accepted", t && strlen(t) <= 8192 && verify(v, t) == AUTH_OK);
    free(big);
    auth_verifier_free(v);
}

static void test_aud_iss(void)
{
    struct auth_verifier *v =
        verifier(secret_path, AUTH_HS256, "aegis-bridge", "https://idp.example");

    CHECK("aud/iss verifier", v != NULL);
    if (!v)
        return;
    CHECK(
        "right aud and iss",
        verify(v,
               hs("{\"exp\":1790000600,\"aud\":\"aegis-bridge\",\"iss\":\"https://idp.example\"}"))
            == AUTH_OK);
    CHECK("aud as an array containing ours",
          verify(v, hs("{\"exp\":1790000600,\"aud\":[\"x\",\"aegis-bridge\"],\"iss\":\"https://"
                       "idp.example\"}"))
              == AUTH_OK);
    CHECK("wrong aud",
          verify(v, hs("{\"exp\":1790000600,\"aud\":\"other\",\"iss\":\"https://idp.example\"}"))
              == AUTH_WRONG_AUDIENCE);
    CHECK("missing aud", verify(v, hs("{\"exp\":1790000600,\"iss\":\"https://idp.example\"}"))
                             == AUTH_WRONG_AUDIENCE);
    CHECK("wrong iss",
          verify(v, hs("{\"exp\":1790000600,\"aud\":\"aegis-bridge\",\"iss\":\"https://evil\"}"))
              == AUTH_WRONG_ISSUER);
    CHECK("missing iss",
          verify(v, hs("{\"exp\":1790000600,\"aud\":\"aegis-bridge\"}")) == AUTH_WRONG_ISSUER);
    CHECK("iss not a string",
          verify(v, hs("{\"exp\":1790000600,\"aud\":\"aegis-bridge\",\"iss\":1}"))
              == AUTH_BAD_CLAIMS);
    auth_verifier_free(v);
}

static void test_rs256(void)
{
    struct auth_verifier *v = verifier(rsa_pub, AUTH_RS256, NULL, NULL);
    size_t n;
    char *pem;

    CHECK("RS256 verifier", v != NULL);
    if (!v)
        return;
    CHECK("valid RS256 token accepted",
          verify(v, sign_file(JWT_ALG_RS256, rsa_priv, GOOD)) == AUTH_OK);
    CHECK("RS256 token signed by OpenSSL (another issuer) accepted",
          verify(v, sign_openssl("RS256", rsa_priv, GOOD)) == AUTH_OK);
    CHECK("RS256 token of another key: bad signature",
          verify(v, sign_file(JWT_ALG_RS256, rsa_other_priv, GOOD)) == AUTH_BAD_SIGNATURE);
    pem = slurp(rsa_pub, &n);
    CHECK("HS256 token signed with the RS256 public key's PEM as secret refused (key confusion)",
          verify(v, sign(JWT_ALG_HS256, pem, n, GOOD)) == AUTH_ALG_MISMATCH);
    free(pem);
    CHECK("RS256: alg none refused",
          verify(v, forge("{\"alg\":\"none\"}", GOOD, "")) == AUTH_ALG_NONE);
    CHECK("RS256: expired",
          verify(v, sign_file(JWT_ALG_RS256, rsa_priv, "{\"exp\":1789000000}")) == AUTH_EXPIRED);
    auth_verifier_free(v);
}

static void test_es256(void)
{
    struct auth_verifier *v = verifier(ec_pub, AUTH_ES256, NULL, NULL);

    CHECK("ES256 verifier", v != NULL);
    if (!v)
        return;
    CHECK("valid ES256 token accepted",
          verify(v, sign_file(JWT_ALG_ES256, ec_priv, GOOD)) == AUTH_OK);
    CHECK("ES256 token signed by OpenSSL as JOSE r||s (another issuer) accepted",
          verify(v, sign_openssl("ES256", ec_priv, GOOD)) == AUTH_OK);
    CHECK("RS256 token against ES256 refused",
          verify(v, sign_file(JWT_ALG_RS256, rsa_priv, GOOD)) == AUTH_ALG_MISMATCH);
    CHECK("ES256 token signed by another key: bad signature",
          verify(v, sign_file(JWT_ALG_ES256, ec_other_priv, GOOD)) == AUTH_BAD_SIGNATURE);
    auth_verifier_free(v);
}

static void test_patterns(void)
{
    CHECK("conv-* matches conv-1",
          auth_pattern_match("conversation:conv-*", "conversation", "conv-1"));
    CHECK("conv-* does not match conv",
          !auth_pattern_match("conversation:conv-*", "conversation", "conv"));
    CHECK("conv-* does not match conv- (needs a suffix)",
          !auth_pattern_match("conversation:conv-*", "conversation", "conv-"));
    CHECK("conv-* does not match xconv-1",
          !auth_pattern_match("conversation:conv-*", "conversation", "xconv-1"));
    CHECK("* matches any id of the kind",
          auth_pattern_match("workspace:*", "workspace", "anything.1"));
    CHECK("workspace:* does not match a conversation",
          !auth_pattern_match("workspace:*", "conversation", "a"));
    CHECK("a * in the middle is literal",
          !auth_pattern_match("workspace:a*b", "workspace", "axb")
              && !auth_pattern_match("workspace:a*b", "workspace", "ab"));
    CHECK("exact match", auth_pattern_match("workspace:chk-42", "workspace", "chk-42")
                             && !auth_pattern_match("workspace:chk-42", "workspace", "chk-420"));
    CHECK("kind prefix must be exact", !auth_pattern_match("workspaces:a", "workspace", "a")
                                           && !auth_pattern_match("workspace", "workspace", "a")
                                           && !auth_pattern_match("*", "workspace", "a"));
    CHECK("empty id never matches", !auth_pattern_match("workspace:*", "workspace", ""));
    CHECK("valid patterns",
          auth_pattern_valid("workspace:a") && auth_pattern_valid("conversation:*")
              && auth_pattern_valid("conversation:c-*") && auth_pattern_valid("workspace:a*b"));
    CHECK("invalid patterns",
          !auth_pattern_valid("workspace:") && !auth_pattern_valid("*")
              && !auth_pattern_valid("topic:a") && !auth_pattern_valid("workspace:a b")
              && !auth_pattern_valid("workspace:a/b") && !auth_pattern_valid(""));
    CHECK("run entries", auth_run_valid("rule_37") && auth_run_valid("*") && !auth_run_valid("r*")
                             && !auth_run_valid("") && !auth_run_valid("a b"));
}

static void test_run_default(void)
{
    struct auth_claims c;
    char *run[] = { "default" };

    memset(&c, 0, sizeof c);
    c.run = run;
    c.nrun = 1;
    CHECK("a run without agent_type is the default agent type",
          auth_may_run(&c, NULL) && auth_may_run(&c, "default") && !auth_may_run(&c, "rule_37"));
}

static void test_anonymous(void)
{
    struct auth_claims *c = auth_claims_all();

    CHECK("anonymous claims allow everything", c && auth_may_subscribe(c, "workspace", "x")
                                                   && auth_may_subscribe(c, "conversation", "y")
                                                   && auth_may_run(c, "t") && auth_may_run(c, NULL)
                                                   && auth_may_metrics(c) && c->exp == 0);
    auth_claims_free(c);
    CHECK("NULL claims allow nothing", !auth_may_subscribe(NULL, "workspace", "x")
                                           && !auth_may_run(NULL, "t") && !auth_may_metrics(NULL));
}

static int picked(const char *a, const char *c, const char *q, const char *want,
                  enum auth_source ws)
{
    enum auth_source s;
    char *t = auth_token_pick(a, c, q, &s);
    int ok = want ? (t && !strcmp(t, want) && s == ws) : (!t && s == AUTH_SRC_NONE);

    free(t);
    return ok;
}

static void test_pick(void)
{
    CHECK("bearer wins over cookie and query",
          picked("Bearer aaa", "aegis_token=bbb", "ccc", "aaa", AUTH_SRC_BEARER));
    CHECK("scheme is case-insensitive, spaces skipped",
          picked("  bearer   aaa  ", NULL, NULL, "aaa", AUTH_SRC_BEARER));
    CHECK("cookie when no bearer",
          picked(NULL, "x=1; aegis_token=bbb; y=2", "ccc", "bbb", AUTH_SRC_COOKIE));
    CHECK("Basic auth does not hide the cookie",
          picked("Basic dXNlcjpwYXNz", "aegis_token=bbb", NULL, "bbb", AUTH_SRC_COOKIE));
    CHECK("cookie name must match exactly",
          picked(NULL, "xaegis_token=bbb; aegis_tokenx=c", "q", "q", AUTH_SRC_QUERY));
    CHECK("quoted cookie value", picked(NULL, "aegis_token=\"bbb\"", NULL, "bbb", AUTH_SRC_COOKIE));
    CHECK("last cookie in the header",
          picked(NULL, "a=1;aegis_token=zz", NULL, "zz", AUTH_SRC_COOKIE));
    CHECK("query last", picked(NULL, NULL, "ccc", "ccc", AUTH_SRC_QUERY));
    CHECK("nothing", picked(NULL, NULL, NULL, NULL, AUTH_SRC_NONE));
    CHECK("empty bearer, empty cookie, empty query: nothing",
          picked("Bearer ", "aegis_token=", "", NULL, AUTH_SRC_NONE));
    CHECK("'Bearer' without a space is not a scheme",
          picked("Bearerx aaa", NULL, NULL, NULL, AUTH_SRC_NONE));
}

static void test_redact(void)
{
    char *r;

    r = auth_redact_query("access_token=abc.def.ghi&message=hi");
    CHECK("redact first argument", r && !strcmp(r, "access_token=[redacted]&message=hi"));
    free(r);
    r = auth_redact_query("a=1&access_token=secret&access_token=again");
    CHECK("redact every occurrence",
          r && !strcmp(r, "a=1&access_token=[redacted]&access_token=[redacted]"));
    free(r);
    r = auth_redact_query("xaccess_token=keep&a=access_token=keep");
    CHECK("only whole argument names", r && !strcmp(r, "xaccess_token=keep&a=access_token=keep"));
    free(r);
    r = auth_redact_query("access_token=&access_token=&access_token=&access_token=");
    CHECK("empty values, output grows safely",
          r
              && !strcmp(r, "access_token=[redacted]&access_token=[redacted]&access_token=["
                            "redacted]&access_token=[redacted]"));
    free(r);
}

/* bounded random inputs (fixed seed) through every pure parser, under
 * ASan/UBSan: nothing crashes, garbage never verifies, redaction holds */
static void test_random_inputs(void)
{
    static const char alphabet[] = "aZ09-_.=;& \t\"%*:Bearer access_token aegis_token eyJ\x80\xff";
    struct auth_verifier *v = verifier(secret_path, AUTH_HS256, NULL, NULL);
    char buf[300], *t, *r;
    enum auth_source src;
    struct auth_claims *c;
    int i, k, n, verified = 0, leaked = 0;
    unsigned seed = 42;

    for (i = 0; v && i < 20000; i++) {
        n = (int)(rand_r(&seed) % (sizeof buf - 1));
        for (k = 0; k < n; k++)
            buf[k] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        buf[n] = '\0';
        if (auth_verify(v, buf, NOW, &c) == AUTH_OK)
            verified++;
        auth_claims_free(c);
        free(auth_token_pick(buf, buf, buf, &src));
        (void)auth_pattern_match(buf, "workspace", buf);
        (void)auth_pattern_valid(buf);
        r = auth_redact_query(buf);
        t = r ? strstr(r, "access_token=") : NULL;
        if (r && t && (t == r || t[-1] == '&') && strncmp(t + 13, "[redacted]", 10))
            leaked++;
        free(r);
    }
    CHECK("20000 random strings: none verifies, no crash", v && verified == 0);
    CHECK("20000 random query strings: every access_token value redacted", leaked == 0);
    auth_verifier_free(v);
}

static int run_token(int argc, const char **argv, char *out, size_t outcap)
{
    FILE *o = fmemopen(out, outcap, "w"), *e = fopen("/dev/null", "w");
    int rc = token_main(argc, (char **)argv, o, e);

    fclose(o);
    fclose(e);
    return rc;
}

static void test_mint(void)
{
    char out[4096];
    struct auth_verifier *v = verifier(secret_path, AUTH_HS256, NULL, NULL);
    struct auth_claims *c = NULL;
    const char *ok[] = { "token",
                         "--key",
                         secret_path,
                         "--subscribe",
                         "workspace:chk-42",
                         "--subscribe",
                         "conversation:conv-*",
                         "--run",
                         "rule_37",
                         "--sub",
                         "u1",
                         "--ttl",
                         "10m",
                         "--metrics" };
    const char *nokey[] = { "token", "--subscribe", "workspace:a" };
    const char *badpat[] = { "token", "--key", secret_path, "--subscribe", "topic:a" };
    const char *badttl[] = { "token", "--key", secret_path, "--ttl", "1y" };
    const char *badalg[] = { "token", "--key", secret_path, "--alg", "RS256" };
    const char *unknown[] = { "token", "--key", secret_path, "--bogus", "1" };
    const char *shortkey[] = { "token", "--key", short_path };
    const char *novalue[] = { "token", "--key" };
    const char *help[] = { "token", "--help" };
    char *nl;

    CHECK("ttl parsing", token_parse_ttl("1h") == 3600 && token_parse_ttl("90") == 90
                             && token_parse_ttl("15m") == 900 && token_parse_ttl("7d") == 604800
                             && token_parse_ttl("0") < 0 && token_parse_ttl("-1h") < 0
                             && token_parse_ttl("1hh") < 0 && token_parse_ttl("366d") < 0
                             && token_parse_ttl("") < 0 && token_parse_ttl("h") < 0);
    memset(out, 0, sizeof out);
    CHECK("token command succeeds", run_token(14, ok, out, sizeof out) == 0);
    nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    CHECK("minted token verifies with the claims asked for",
          v && auth_verify(v, out, time(NULL), &c) == AUTH_OK && c && c->nsubscribe == 2
              && c->nrun == 1 && c->metrics && c->sub && !strcmp(c->sub, "u1")
              && c->exp > (long long)time(NULL) + 500 && c->exp <= (long long)time(NULL) + 600);
    auth_claims_free(c);
    CHECK("minted token has expired after its ttl",
          v && auth_verify(v, out, time(NULL) + 700, &c) == AUTH_EXPIRED);
    CHECK("no --key: exit 2", run_token(3, nokey, out, sizeof out) == 2);
    CHECK("bad pattern: exit 2", run_token(5, badpat, out, sizeof out) == 2);
    CHECK("bad ttl: exit 2", run_token(5, badttl, out, sizeof out) == 2);
    CHECK("RS256 minting: exit 2", run_token(5, badalg, out, sizeof out) == 2);
    CHECK("unknown flag: exit 2", run_token(5, unknown, out, sizeof out) == 2);
    CHECK("short secret: exit 2", run_token(3, shortkey, out, sizeof out) == 2);
    CHECK("flag without value: exit 2", run_token(2, novalue, out, sizeof out) == 2);
    memset(out, 0, sizeof out);
    CHECK("--help: usage on stdout, exit 0",
          run_token(2, help, out, sizeof out) == 0 && strstr(out, "usage: aegis-bridge token"));
    auth_verifier_free(v);
}

int main(void)
{
    CHECK("test keys made with openssl", make_keys() == 0);
    test_keys();
    test_hs256();
    test_aud_iss();
    test_rs256();
    test_es256();
    test_patterns();
    test_anonymous();
    test_run_default();
    test_pick();
    test_redact();
    test_random_inputs();
    test_mint();
    drop_keys();
    return check_done("auth_test");
}
