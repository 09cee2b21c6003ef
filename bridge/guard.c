/*
 * guard.c: owns the checks that keep other web sites out: the Host
 * allow-list (a rebound DNS name reaching a loopback bridge), the
 * fetch-metadata and Origin check on side-effecting requests (an <img>,
 * form or script on another site starting runs with the user's cookie),
 * and what counts as a loopback listen address.  Pure functions only.
 */
#define _GNU_SOURCE
#include "guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int guard_is_loopback(const char *host)
{
    struct in_addr a;

    if (!host)
        return 0;
    if (!strcmp(host, "localhost"))
        return 1;
    if (inet_pton(AF_INET, host, &a) != 1)
        return 0;
    return (ntohl(a.s_addr) >> 24) == 127;
}

static int guard_push(char ***v, size_t *n, const char *s)
{
    char **grown = realloc(*v, (*n + 1) * sizeof **v);

    if (!grown)
        return -1;
    *v = grown;
    if (!(grown[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

int guard_default_hosts(int port, char ***v, size_t *n)
{
    static const char *const names[] = { "127.0.0.1", "localhost", "[::1]" };
    char buf[64];
    size_t i;

    for (i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "%s:%d", names[i], port);
        if (guard_push(v, n, buf) < 0 || (port == 80 && guard_push(v, n, names[i]) < 0))
            return -1;
    }
    return 0;
}

/* splits "host[:port]" / "[v6][:port]": host length and the port text (or NULL) */
static int guard_split(const char *s, size_t len, size_t *hl, const char **port, size_t *pl)
{
    const char *end = s + len, *colon;

    if (len == 0)
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return -1;
        *hl = (size_t)(close - s) + 1;
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon && *colon != ':')
            return -1;
    } else {
        colon = memchr(s, ':', len);
        *hl = colon ? (size_t)(colon - s) : len;
    }
    *port = colon ? colon + 1 : NULL;
    *pl = colon ? (size_t)(end - colon - 1) : 0;
    return *hl > 0 ? 0 : -1;
}

int guard_host_entry_ok(const char *s, size_t len)
{
    size_t hl, pl, i;
    const char *port;

    if (len > 255 || guard_split(s, len, &hl, &port, &pl) < 0)
        return 0;
    for (i = 0; i < hl; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.'
              || (s[0] == '[' && (c == ':' || c == '[' || c == ']'))))
            return 0;
    }
    if (port) {
        if (pl < 1 || pl > 5)
            return 0;
        for (i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)port[i]))
                return 0;
        }
    }
    return 1;
}

int guard_host_allowed(const char *host, char *const *allowed, size_t n)
{
    size_t i, hl, pl, ehl, epl, len;
    const char *port, *eport;

    if (!host || (len = strlen(host)) == 0 || guard_split(host, len, &hl, &port, &pl) < 0)
        return 0;
    for (i = 0; i < n; i++) {
        const char *e = allowed[i];
        if (guard_split(e, strlen(e), &ehl, &eport, &epl) < 0 || ehl != hl
            || strncasecmp(e, host, hl))
            continue;
        if (!eport || (port && epl == pl && !strncmp(eport, port, pl)))
            return 1;
    }
    return 0;
}

int guard_origin_listed(const char *origin, char *const *cors, size_t ncors, int star_ok)
{
    size_t i;

    for (i = 0; origin && i < ncors; i++) {
        if ((star_ok && !strcmp(cors[i], "*")) || !strcmp(cors[i], origin))
            return 1;
    }
    return 0;
}

const char *guard_cross_site(const char *sec_fetch_site, const char *origin, const char *own_scheme,
                             const char *host, char *const *cors, size_t ncors)
{
    char own[300];
    int listed = guard_origin_listed(origin, cors, ncors, 0);

    if (origin) {
        snprintf(own, sizeof own, "%s://%s", own_scheme, host ? host : "");
        if (!host || (strcasecmp(origin, own) && !listed))
            return "forbidden: a request from another origin may not start runs "
                   "(list it with --cors-origin)";
    }
    /* same-site (a sibling subdomain) is another origin too */
    if (sec_fetch_site && strcasecmp(sec_fetch_site, "same-origin")
        && strcasecmp(sec_fetch_site, "none") && !listed)
        return "forbidden: a cross-site request may not start runs";
    return NULL;
}
