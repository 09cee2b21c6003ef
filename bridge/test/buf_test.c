/*
 * buf_test.c: unit tests of buf.c, the bridge's one growable buffer:
 * appends past the first capacity, the NUL after the bytes, formatted
 * appends longer than any first guess, the first capacity hint, reset.
 * Prints "ok - ..." / "not ok - ..." lines; exit status 1 if any failed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#include "check.h"

int main(void)
{
    struct buf b = { 0 };
    char big[5000];
    int i, ok = 1;

    for (i = 0; i < 1000; i++)
        ok &= buf_add(&b, "0123456789", 10) == 0;
    CHECK("10 000 bytes appended ten at a time", ok && b.len == 10000 && b.cap >= 10001);
    CHECK("the bytes are in order and NUL-terminated",
          memcmp(b.p + 9990, "0123456789", 10) == 0 && b.p[b.len] == '\0');
    buf_free(&b);
    CHECK("buf_free empties it", b.p == NULL && b.len == 0 && b.cap == 0);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK("buf_printf of 5 004 bytes into an empty buffer",
          buf_printf(&b, "<%s|%d>", big, 42) == 0 && b.len == 5004 && b.p[0] == '<'
              && strcmp(b.p + 5000, "|42>") == 0);
    CHECK("buf_str appends after it", buf_str(&b, "!") == 0 && b.len == 5005 && b.p[5004] == '!');
    buf_free(&b);
    CHECK("the first capacity hint is taken", buf_reserve(&b, 10, 4096) == 0 && b.cap == 4096);
    CHECK("a reserve that fits does not grow", buf_reserve(&b, 4000, 4096) == 0 && b.cap == 4096);
    CHECK("an impossible size is refused, the buffer unchanged",
          buf_reserve(&b, (size_t)-1, 0) == -1 && b.cap == 4096 && b.len == 0);
    buf_free(&b);
    return check_done("buf_test");
}
