/*
 * buf.c: owns struct buf's memory (see buf.h): doubling growth, the NUL
 * after the bytes, formatted appends; formatted heap strings (buf_fail).
 */
#define _GNU_SOURCE /* vasprintf */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_FIRST_CAP 256

int buf_reserve(struct buf *b, size_t n, size_t first_cap)
{
    size_t cap;
    char *p;

    if (n > (size_t)-1 / 2 - b->len)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : first_cap ? first_cap : BUF_FIRST_CAP;
    while (cap < b->len + n + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_add(struct buf *b, const void *s, size_t n)
{
    if (buf_reserve(b, n, 0) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int buf_str(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n, 0) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

char *buf_strdup_vprintf(const char *fmt, va_list ap)
{
    char *s = NULL;

    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    return s;
}

char *buf_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = buf_strdup_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

int buf_fail(char **errmsg, int rc, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = buf_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (errmsg)
        *errmsg = s;
    else
        free(s);
    return rc;
}
