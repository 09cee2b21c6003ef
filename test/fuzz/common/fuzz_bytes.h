/*
 * fuzz_bytes.h: reads structured values off a fuzz input (what libFuzzer's
 * C++ FuzzedDataProvider does, in C): each read takes bytes from the front,
 * and an exhausted input reads as zeros and empty strings.
 */
#ifndef FUZZ_BYTES_H
#define FUZZ_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_bytes {
    const unsigned char *p;
    size_t n;
};

static inline unsigned fuzz_u8(struct fuzz_bytes *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline unsigned fuzz_u16(struct fuzz_bytes *f)
{
    unsigned hi = fuzz_u8(f);
    return (hi << 8) | fuzz_u8(f);
}

/* up to max bytes (the length is read first); *len set; points into the input */
static inline const unsigned char *fuzz_take(struct fuzz_bytes *f, size_t max, size_t *len)
{
    size_t want = max > 255 ? fuzz_u16(f) : fuzz_u8(f);
    const unsigned char *p = f->p;

    if (want > max)
        want %= max + 1;
    if (want > f->n)
        want = f->n;
    f->p += want;
    f->n -= want;
    *len = want;
    return p;
}

/* a malloc'd NUL-terminated copy of up to max bytes, cut at the first NUL */
static inline char *fuzz_cstr(struct fuzz_bytes *f, size_t max)
{
    size_t len;
    const unsigned char *p = fuzz_take(f, max, &len);
    char *s = malloc(len + 1);

    if (!s)
        abort();
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static inline void fuzz_fail(const char *why, const char *detail)
{
    fprintf(stderr, "fuzz: %s%s%s\n", why, detail ? ": " : "", detail ? detail : "");
    abort();
}

#endif
