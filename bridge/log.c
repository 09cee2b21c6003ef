/*
 * log.c: owns the log level and the line format
 * "2026-01-01T00:00:00.000Z level=info module=sse <fields>" on stderr.
 */
#define _GNU_SOURCE
#include "log.h"

#include <libwebsockets.h>
#include <stdarg.h>
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

static void log_from_lws(int level, const char *line)
{
    enum log_level l = (level & LLL_ERR) ? LOG_ERROR : (level & LLL_WARN) ? LOG_WARN : LOG_DEBUG;
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    LOG(l, "lws", "msg=\"%.*s\"", (int)n, line);
}

void log_hook_lws(void)
{
    int mask = LLL_ERR | LLL_WARN;

    if (log_current == LOG_DEBUG)
        mask |= LLL_NOTICE;
    lws_set_log_level(mask, log_from_lws);
}
