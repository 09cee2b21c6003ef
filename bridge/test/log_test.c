/*
 * log_test.c: unit tests of log.c: log_text makes any outside value fit for
 * a quoted field (a newline, a quote, a backslash, control characters, NULL,
 * a value past LOG_TEXT_MAX), and a record carrying such values is one
 * well-formed logfmt line on stderr.
 * Prints "ok - ..." / "not ok - ..." lines; exit status 1 if any failed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#include "check.h"

/* 1 when s has no byte below 0x20 or 0x7f, no '"' and no backslash */
static int clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

/* Runs one LOG call with stderr sent to a file; returns what it wrote (malloc'd). */
static char *logged(const char *a, const char *b)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    char *out = calloc(1, 2 * LOG_TEXT_MAX + 1024);
    size_t n;

    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    LOG(LOG_ERROR, "test", "msg=\"query failed\" error=\"%s\" reason=\"%s\" n=%d", log_text(a),
        log_text(b), 7);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, 2 * LOG_TEXT_MAX + 1023, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

/* 1 when line is "<stamp> k=v k=\"v\" ...\n": one newline, at the end, and
 * every field after the timestamp key=value with balanced quotes */
static int one_logfmt_line(const char *line)
{
    const char *p = strchr(line, ' ');
    size_t len = strlen(line);

    if (len == 0 || line[len - 1] != '\n' || strchr(line, '\n') != line + len - 1 || !p)
        return 0;
    for (p++; *p != '\n';) {
        const char *eq = p;
        while (*eq != '=' && *eq != ' ' && *eq != '\n' && *eq != '"')
            eq++;
        if (*eq != '=' || eq == p)
            return 0;                      /* a key without a value */
        p = eq + 1;
        if (*p == '"') {
            p = strchr(p + 1, '"');
            if (!p)
                return 0;
            p++;
        } else {
            while (*p != ' ' && *p != '\n' && *p != '"')
                p++;
        }
        if (*p == ' ')
            p++;
        else if (*p != '\n')
            return 0;
    }
    return 1;
}

static void test_text(void)
{
    char big[LOG_TEXT_MAX * 2];
    const char *t;

    CHECK("a newline becomes a space", strcmp(log_text("ERROR:  boom\nDETAIL:  x"),
                                              "ERROR:  boom DETAIL:  x") == 0);
    CHECK("a double quote becomes a single quote",
          strcmp(log_text("handler \"kg.nope\" does not exist"),
                 "handler 'kg.nope' does not exist") == 0);
    CHECK("a backslash becomes a space", strcmp(log_text("a\\b"), "a b") == 0);
    CHECK("control characters (CR, tab, ESC, DEL) become spaces",
          strcmp(log_text("a\rb\tc\x1b[31md\x7f" "e"), "a b c [31md e") == 0);
    CHECK("trailing newlines and spaces go", strcmp(log_text("ERROR:  boom\n\n"), "ERROR:  boom") == 0);
    CHECK("NULL prints as the empty string", strcmp(log_text(NULL), "") == 0);
    CHECK("UTF-8 text stays as it is", strcmp(log_text("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac") == 0);
    CHECK("log_text_n stops at n bytes", strcmp(log_text_n("abc\"def", 4), "abc'") == 0);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[100] = '\n';
    t = log_text(big);
    CHECK("a long value is cut at LOG_TEXT_MAX with ...",
          strlen(t) == LOG_TEXT_MAX - 1 && strcmp(t + LOG_TEXT_MAX - 4, "...") == 0 && clean(t));
}

static void test_ring(void)
{
    const char *v[LOG_TEXT_SLOTS];
    int i, distinct = 1;

    for (i = 0; i < LOG_TEXT_SLOTS; i++)
        v[i] = log_text(i % 2 ? "odd" : "even");
    for (i = 0; i < LOG_TEXT_SLOTS; i++)
        distinct &= strcmp(v[i], i % 2 ? "odd" : "even") == 0;
    CHECK("LOG_TEXT_SLOTS values of one call stay valid together", distinct);
}

static void test_record(void)
{
    char *line = logged("ERROR:  relation \"aegis.x\" does not exist\nLINE 1: SELECT \\ \x01\x1f",
                        "client sent \"a\"\r\nSet-Cookie: x=1");
    CHECK("a record with a newline, a quote, a backslash and control characters is one line",
          strchr(line, '\n') == line + strlen(line) - 1);
    CHECK("... and well-formed logfmt (key=value, balanced quotes)", one_logfmt_line(line));
    CHECK("... with the cleaned values in place",
          strstr(line, " level=error module=test msg=\"query failed\" error=\"ERROR:  relation "
                       "'aegis.x' does not exist LINE 1: SELECT\" reason=\"client sent 'a'  "
                       "Set-Cookie: x=1\" n=7\n") != NULL);
    free(line);
    line = logged(NULL, "");
    CHECK("NULL and empty values give an empty quoted field",
          one_logfmt_line(line) && strstr(line, "error=\"\" reason=\"\" n=7\n") != NULL);
    free(line);
}

int main(void)
{
    log_set_level(LOG_DEBUG);
    test_text();
    test_ring();
    test_record();
    /* the checker itself refuses what the old lines looked like */
    CHECK("the line check refuses a record split by a raw newline",
          !one_logfmt_line("t level=error msg=x error=\"a\nb\"\n"));
    CHECK("the line check refuses an unbalanced quote",
          !one_logfmt_line("t level=error msg=x error=\"say \"hi\"\"\n"));
    CHECK("the line check refuses a bare event word",
          !one_logfmt_line("t level=info module=drain stopped cursor=1\n"));
    return check_done("log_test");
}
