/*
 * guard_test.c: unit tests of guard.c: loopback addresses, the Host
 * allow-list (defaults, ports, case, IPv6 literals, malformed values) and
 * the fetch-metadata / Origin check on side-effecting requests.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "guard.h"

#include "check.h"

static void test_loopback(void)
{
    CHECK("127.0.0.1 is loopback", guard_is_loopback("127.0.0.1"));
    CHECK("127.1.2.3 is loopback", guard_is_loopback("127.1.2.3"));
    CHECK("localhost is loopback", guard_is_loopback("localhost"));
    CHECK("0.0.0.0 is not loopback", !guard_is_loopback("0.0.0.0"));
    CHECK("10.0.0.1 is not loopback", !guard_is_loopback("10.0.0.1"));
    CHECK("128.0.0.1 is not loopback", !guard_is_loopback("128.0.0.1"));
    CHECK("NULL is not loopback", !guard_is_loopback(NULL));
}

static void test_hosts(void)
{
    char **v = NULL;
    size_t n = 0, i;
    char *custom[] = { "events.example.com", "Bridge.Example:8443", "[2001:db8::1]:8001" };

    CHECK("default hosts", guard_default_hosts(8001, &v, &n) == 0 && n == 3);
    CHECK("127.0.0.1:8001 allowed", guard_host_allowed("127.0.0.1:8001", v, n));
    CHECK("localhost:8001 allowed", guard_host_allowed("localhost:8001", v, n));
    CHECK("LOCALHOST:8001 allowed (case)", guard_host_allowed("LOCALHOST:8001", v, n));
    CHECK("[::1]:8001 allowed", guard_host_allowed("[::1]:8001", v, n));
    CHECK("attacker.example refused", !guard_host_allowed("attacker.example", v, n));
    CHECK("attacker.example:8001 refused", !guard_host_allowed("attacker.example:8001", v, n));
    CHECK("another port refused", !guard_host_allowed("127.0.0.1:8002", v, n));
    CHECK("no port refused (means 80)", !guard_host_allowed("127.0.0.1", v, n));
    CHECK("port prefix refused", !guard_host_allowed("127.0.0.1:800", v, n));
    CHECK("port with junk refused", !guard_host_allowed("127.0.0.1:8001x", v, n));
    CHECK("empty and NULL refused",
          !guard_host_allowed("", v, n) && !guard_host_allowed(NULL, v, n));
    CHECK("localhost.attacker refused", !guard_host_allowed("localhost.attacker:8001", v, n));
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
    v = NULL, n = 0;
    CHECK("port 80 defaults include bare names",
          guard_default_hosts(80, &v, &n) == 0 && n == 6 && guard_host_allowed("localhost", v, n));
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
    CHECK("entry without a port: any port",
          guard_host_allowed("events.example.com:443", custom, 3)
              && guard_host_allowed("events.example.com", custom, 3));
    CHECK("entry with a port: that port only",
          guard_host_allowed("bridge.example:8443", custom, 3)
              && !guard_host_allowed("bridge.example", custom, 3));
    CHECK("IPv6 literal entry", guard_host_allowed("[2001:db8::1]:8001", custom, 3)
                                    && !guard_host_allowed("[2001:db8::2]:8001", custom, 3));
    CHECK("entries: valid", guard_host_entry_ok("a.b", 3) && guard_host_entry_ok("a:1", 3)
                                && guard_host_entry_ok("[::1]:80", 8));
    CHECK("entries: invalid",
          !guard_host_entry_ok("", 0) && !guard_host_entry_ok("a b", 3)
              && !guard_host_entry_ok("a:", 2) && !guard_host_entry_ok("a:123456", 8)
              && !guard_host_entry_ok("http://a", 8) && !guard_host_entry_ok("[::1", 4)
              && !guard_host_entry_ok("a/b", 3));
}

static void test_cross_site(void)
{
    char *cors[] = { "http://app.test", "*" };
    const char *h = "127.0.0.1:8001";

    CHECK("curl (no headers) passes", !guard_cross_site(NULL, NULL, "http", h, cors, 2));
    CHECK("same-origin passes",
          !guard_cross_site("same-origin", "http://127.0.0.1:8001", "http", h, cors, 2));
    CHECK("typed URL (none) passes", !guard_cross_site("none", NULL, "http", h, cors, 2));
    CHECK("img from another site refused",
          guard_cross_site("cross-site", NULL, "http", h, cors, 2) != NULL);
    CHECK("same-site sibling refused",
          guard_cross_site("same-site", NULL, "http", h, cors, 2) != NULL);
    CHECK("form POST from another origin refused",
          guard_cross_site("cross-site", "http://evil.test", "http", h, cors, 2) != NULL);
    CHECK("foreign Origin without fetch metadata refused",
          guard_cross_site(NULL, "http://evil.test", "http", h, cors, 2) != NULL);
    CHECK("Origin null refused", guard_cross_site(NULL, "null", "http", h, cors, 2) != NULL);
    CHECK("own origin over https when served over http refused",
          guard_cross_site(NULL, "https://127.0.0.1:8001", "http", h, cors, 2) != NULL);
    CHECK("listed CORS origin passes even cross-site",
          !guard_cross_site("cross-site", "http://app.test", "http", h, cors, 2));
    CHECK("* does not let any origin start runs",
          guard_cross_site("cross-site", "http://other.test", "http", h, cors, 2) != NULL);
    CHECK("Origin without a Host refused",
          guard_cross_site(NULL, "http://127.0.0.1:8001", "http", NULL, cors, 2) != NULL);
    CHECK("origin listing: exact, star when asked",
          guard_origin_listed("http://app.test", cors, 2, 0)
              && !guard_origin_listed("http://x.test", cors, 2, 0)
              && guard_origin_listed("http://x.test", cors, 2, 1)
              && !guard_origin_listed(NULL, cors, 2, 1));
}

int main(void)
{
    test_loopback();
    test_hosts();
    test_cross_site();
    return check_done("guard_test");
}
