/*
 * tls_test.c: unit tests of tls_check_pair against the certificates of
 * test/tls/mkcerts.sh (made in a temporary directory): a good pair passes,
 * every bad one is refused with a message naming the file and the fault.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

#include "check.h"

static char dir[64];

static char *path(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *p = bufs[k++ % 4];

    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* the pair is refused and the message contains needle and the named file */
static void refused(const char *label, const char *cert, const char *key, const char *file,
                    const char *needle)
{
    char *err = NULL;
    int rc = tls_check_pair(path(cert), path(key), &err);
    char name[256];

    snprintf(name, sizeof name, "refused: %s", label);
    CHECK(name, rc == -1 && err && strstr(err, path(file)) && strstr(err, needle));
    if (err && !(strstr(err, path(file)) && strstr(err, needle)))
        printf("#   message was: %s\n", err);
    free(err);
}

int main(void)
{
    char cmd[512], *err = NULL;
    int rc;

    snprintf(dir, sizeof dir, "/tmp/aegis-tls-test-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(cmd, sizeof cmd, "../test/tls/mkcerts.sh %s >/dev/null", dir);
    CHECK("test certificates made (test/tls/mkcerts.sh)", system(cmd) == 0);
    rc = tls_check_pair(path("server.pem"), path("server.key"), &err);
    CHECK("a valid pair passes", rc == 0 && !err);
    free(err);
    refused("missing certificate", "nope.pem", "server.key", "nope.pem", "No such file");
    refused("missing key", "server.pem", "nope.key", "nope.key", "No such file");
    refused("directory", "ca-db", "server.key", "ca-db", "not a regular file");
    refused("garbage certificate", "garbage.pem", "server.key", "garbage.pem", "no PEM certificate");
    refused("empty key", "server.pem", "empty.pem", "empty.pem", "no unencrypted PEM private key");
    refused("certificate as key", "server.pem", "server.pem", "server.pem", "private key");
    refused("key of another certificate", "server.pem", "second.key", "second.key", "does not match");
    refused("expired", "expired.pem", "expired.key", "expired.pem", "expired");
    refused("not yet valid", "future.pem", "future.key", "future.pem", "not valid yet");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return check_done("tls_test");
}
