/*
 * log.h: the bridge's one logging function: level, UTC timestamp, module
 * and key=value fields, one line per record, to stderr.  LOG() checks the
 * level before anything is formatted.
 *
 * The convention, for every LOG call: after the prefix (timestamp, level=,
 * module=) come key=value fields only, the first one msg=: a short name of
 * what happened, a bare word (msg=stopped) or a quoted phrase
 * (msg="connection lost").  So the whole record after the timestamp is
 * logfmt, the format of log/slog's text handler, Heroku and Loki, and a
 * tool reads every field, the message included, by its key; a bare "event
 * word" first (the other style the code had) is a key without a value there.
 * Every value that comes from outside the bridge (PostgreSQL's and
 * librdkafka's messages, lws's lines, topic names, anything a client sent)
 * is printed quoted through log_text: key="%s", log_text(value).
 */
#ifndef AEGIS_LOG_H
#define AEGIS_LOG_H

#include "config.h"

void log_set_level(enum log_level l);
int log_enabled(enum log_level l);
/* fmt formats the rest of the line: msg=... then key=value fields. */
void log_write(enum log_level l, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Routes libwebsockets' own log lines through log_write. */
void log_hook_lws(void);

/* s made fit for a quoted field ("%s" between double quotes): '"' becomes
 * '\'', a backslash and every control character (newline, CR, tab, ESC...)
 * a space, trailing spaces go, and it is cut at LOG_TEXT_MAX - 4 bytes with
 * "..." appended; NULL prints as "".  The result lives in a per-thread ring
 * of LOG_TEXT_SLOTS buffers: valid until as many more calls in this thread,
 * enough for the values of one LOG call.  Never fails. */
#define LOG_TEXT_MAX 4096
#define LOG_TEXT_SLOTS 4
const char *log_text(const char *s);
/* The same for the first n bytes of s (which need not be NUL-terminated). */
const char *log_text_n(const char *s, size_t n);

#define LOG(lvl, mod, ...) \
    do { if (log_enabled(lvl)) log_write((lvl), (mod), __VA_ARGS__); } while (0)

#endif
