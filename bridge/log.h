/*
 * log.h: the bridge's one logging function: level, UTC timestamp, module
 * and key=value fields, one line per record, to stderr.  LOG() checks the
 * level before anything is formatted.
 */
#ifndef AEGIS_LOG_H
#define AEGIS_LOG_H

#include "config.h"

void log_set_level(enum log_level l);
int log_enabled(enum log_level l);
/* fmt formats the rest of the line: a message word then key=value fields. */
void log_write(enum log_level l, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Routes libwebsockets' own log lines through log_write. */
void log_hook_lws(void);

#define LOG(lvl, mod, ...) \
    do { if (log_enabled(lvl)) log_write((lvl), (mod), __VA_ARGS__); } while (0)

#endif
