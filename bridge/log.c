/*
 * log.c: owns the log level, the line format
 * "2026-01-01T00:00:00.000Z level=info module=sse msg=... <fields>" on
 * stderr, and log_text, the one cleaning of outside values for a field.
 */
#define _GNU_SOURCE
#include "log.h"

#include <libwebsockets.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_current = LOG_INFO;

void log_set_level(enum log_level l)
{
    log_current = l;
}

int log_enabled(enum log_level l)
{
    return l >= log_current;
}

void log_write(enum log_level l, const char *module, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    fprintf(stderr, "%s.%03ldZ level=%s module=%s ", stamp, ts.tv_nsec / 1000000L,
            config_log_level_name(l), module);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

const char *log_text_n(const char *s, size_t n)
{
    static _Thread_local char ring[LOG_TEXT_SLOTS][LOG_TEXT_MAX];
    static _Thread_local unsigned next;
    char *t = ring[next++ % LOG_TEXT_SLOTS];
    size_t i, len = 0, cut = LOG_TEXT_MAX - 4;

    for (i = 0; s != NULL && i < n && s[i] != '\0' && len < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        t[len++] = c == '"' ? '\'' : (c == '\\' || c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    if (s != NULL && i < n && s[i] != '\0') {
        memcpy(t + len, "...", 3);
        len += 3;
    }
    while (len > 0 && t[len - 1] == ' ')
        len--;
    t[len] = '\0';
    return t;
}

const char *log_text(const char *s)
{
    return log_text_n(s, SIZE_MAX);
}

static void log_from_lws(int level, const char *line)
{
    enum log_level l = (level & LLL_ERR) ? LOG_ERROR : (level & LLL_WARN) ? LOG_WARN : LOG_DEBUG;

    LOG(l, "lws", "msg=lws text=\"%s\"", log_text(line));
}

void log_hook_lws(void)
{
    int mask = LLL_ERR | LLL_WARN;

    if (log_current == LOG_DEBUG)
        mask |= LLL_NOTICE;
    lws_set_log_level(mask, log_from_lws);
}
