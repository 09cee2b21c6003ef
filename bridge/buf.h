/*
 * buf.h: the bridge's one growable byte buffer: a heap block that doubles
 * as it fills and keeps a NUL after its bytes, so no message, batch or
 * response has a fixed size it could overflow.  Used by the consumer's
 * encoder, the SSE send buffers and /metrics; and formatted heap strings
 * for the error messages every module hands back.
 */
#ifndef AEGIS_BUF_H
#define AEGIS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *p;            /* NULL until the first byte; then len bytes and a NUL */
    size_t len, cap;
};
/* buf_add and buf_printf keep that layout.  A user with a layout of its own
 * (sse.c: lws's LWS_PRE headroom before the bytes) calls buf_reserve with
 * the headroom added and writes the bytes itself. */

/* Room for n more bytes and a NUL; an empty buffer starts at first_cap bytes
 * (0: 256).  Returns 0, or -1 when out of memory (the buffer is unchanged). */
int buf_reserve(struct buf *b, size_t n, size_t first_cap);
int buf_add(struct buf *b, const void *s, size_t n);
int buf_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);   /* back to empty */

/* Formatted heap strings, for error messages handed to a caller.
 * buf_strdup_printf: a new string, or NULL when out of memory.
 * buf_fail: *errmsg = that string (errmsg may be NULL: nothing is kept), and
 * returns rc, so a check reads `return buf_fail(errmsg, -1, "...", ...);`. */
char *buf_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *buf_strdup_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
int buf_fail(char **errmsg, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
