/*
 * guard.h: the cross-site and rebinding checks of the request path, as pure
 * functions of header values: the Host allow-list (DNS rebinding), the
 * fetch-metadata / Origin check on requests with side effects (CSRF), and
 * which listen addresses count as loopback (deny by default elsewhere).
 */
#ifndef AEGIS_GUARD_H
#define AEGIS_GUARD_H

#include <stddef.h>

/* 1 if the IPv4 address text is in 127.0.0.0/8 (or "localhost"). */
int guard_is_loopback(const char *host);

/* The default allow-list on loopback: 127.0.0.1:PORT, localhost:PORT and
 * [::1]:PORT (and the bare names when PORT is 80).  Appends to *v (n
 * entries); -1 on out of memory. */
int guard_default_hosts(int port, char ***v, size_t *n);

/* 1 if s is an allow-list entry: a host name, IPv4 or [IPv6] address,
 * optionally ":PORT". */
int guard_host_entry_ok(const char *s, size_t len);

/* 1 if the Host header value matches an entry (case-insensitive; an entry
 * without a port matches that host on any port).  NULL host: 0. */
int guard_host_allowed(const char *host, char *const *allowed, size_t n);

/*
 * A request with a side effect (a run request) from a browser on another
 * site: returns the one-line reason to refuse it (403), or NULL to let it
 * through.  sec_fetch_site and origin are the raw headers (NULL absent);
 * own_scheme "http" or "https" and host the Host header make the bridge's
 * own origin; cors lists the --cors-origin values ("*" does not count:
 * side effects need an origin named explicitly).  Clients that send
 * neither header (curl, workers) pass.
 */
const char *guard_cross_site(const char *sec_fetch_site, const char *origin, const char *own_scheme,
                             const char *host, char *const *cors, size_t ncors);

/* 1 if origin (an Origin header value) is one of the listed CORS origins,
 * compared exactly; "*" in the list matches when star_ok. */
int guard_origin_listed(const char *origin, char *const *cors, size_t ncors, int star_ok);

#endif
