/*
 * pgconn_test.c: unit tests of pgconn_result_int8, the check the drain
 * reads its cursor results through (issue 20 item 9: a result row was read
 * without checking the row count), on results built with libpq's
 * PQmakeEmptyPGresult/PQsetvalue: one row, no row, two rows, NULL, not a
 * number, an error result, no result.
 * Prints "ok - ..." / "not ok - ..." lines; exit status 1 if any failed.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pgconn.h"

#include "check.h"

/* a TUPLES_OK result of one int8 column with the given values (NULL: SQL NULL) */
static PGresult *rows(int n, const char *const *values)
{
    PGresAttDesc col;
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    int i;

    memset(&col, 0, sizeof col);
    col.name = (char *)"cursor_position";
    col.typid = 20;   /* int8 */
    col.typlen = 8;
    col.atttypmod = -1;
    if (!r || !PQsetResultAttrs(r, 1, &col))
        return r;
    for (i = 0; i < n; i++)
        PQsetvalue(r, i, 0, (char *)values[i], values[i] ? (int)strlen(values[i]) : -1);
    return r;
}

static int read_one(int n, const char *const *values, int64_t *out)
{
    PGresult *r = rows(n, values);
    int rc = pgconn_result_int8(r, out);

    PQclear(r);
    return rc;
}

int main(void)
{
    const char *one[] = { "9223372036854775807" }, *two[] = { "1", "2" }, *null[] = { NULL };
    const char *text[] = { "12x" }, *empty[] = { "" }, *big[] = { "9223372036854775808" };
    PGresult *err = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
    int64_t v = -7;

    CHECK("one row: its value", read_one(1, one, &v) == 0 && v == INT64_MAX);
    v = -7;
    CHECK("no row: refused, nothing written", read_one(0, NULL, &v) == -1 && v == -7);
    CHECK("two rows: refused", read_one(2, two, &v) == -1 && v == -7);
    CHECK("NULL: refused", read_one(1, null, &v) == -1 && v == -7);
    CHECK("not a number: refused", read_one(1, text, &v) == -1 && read_one(1, empty, &v) == -1);
    CHECK("out of range: refused", read_one(1, big, &v) == -1 && v == -7);
    CHECK("an error result: refused", pgconn_result_int8(err, &v) == -1 && v == -7);
    CHECK("no result (connection lost): refused", pgconn_result_int8(NULL, &v) == -1);
    PQclear(err);
    return check_done("pgconn_test");
}
