/*
 * pgconn.h: one non-blocking libpq connection driven by the loop, with
 * reconnect/backoff, remembered LISTEN channels and a FIFO query queue
 * (one query on the wire at a time, results delivered in queue order).
 */
#ifndef AEGIS_PGCONN_H
#define AEGIS_PGCONN_H

#include <libpq-fe.h>
#include <stdint.h>

struct bridge;
struct pgconn;

struct pgconn_callbacks {
    void (*on_connected)(struct pgconn *c, void *ud);   /* after connect AND after every reconnect */
    void (*on_notify)(struct pgconn *c, const char *channel, const char *payload, void *ud);
    void (*on_lost)(struct pgconn *c, void *ud);         /* connection lost; pending queries already failed */
};

typedef void (*pgconn_result_cb)(struct pgconn *c, PGresult *res /* NULL if the connection was lost */, void *ud);

/* conninfo NULL or "" means libpq's PG* environment.  Starts connecting. */
struct pgconn *pgconn_new(struct bridge *b, const char *conninfo, const char *name,
                          const struct pgconn_callbacks *cbs, void *ud);
void pgconn_free(struct pgconn *c);   /* pending queries get cb(NULL) */

/* Remembered and re-issued after every reconnect. 0 ok, -1 bad channel. */
int pgconn_listen(struct pgconn *c, const char *channel);

/* Queue a query with text params (always PQsendQueryParams, never string-built
 * SQL); cb gets each result once (the last result of the statement); res is
 * freed by pgconn after cb returns.  Returns -1 when not connected (the query
 * is not queued and cb is not called) or out of memory. */
int pgconn_query(struct pgconn *c, const char *sql, int nparams, const char *const *params,
                 pgconn_result_cb cb, void *ud);

/* Queue PQsendPrepare of a named statement (parameter types from the SQL's
 * casts).  A prepared statement lives as long as the session: prepare it
 * again after on_connected.  Same return and cb rules as pgconn_query. */
int pgconn_prepare(struct pgconn *c, const char *stmt, const char *sql, pgconn_result_cb cb,
                   void *ud);
/* Queue PQsendQueryPrepared of a statement prepared on this connection.
 * formats NULL: all text; formats[i] == 1: params[i] is lengths[i] bytes in
 * the type's binary format.  The params are copied.  Same rules as
 * pgconn_query. */
int pgconn_query_prepared(struct pgconn *c, const char *stmt, int nparams,
                          const char *const *params, const int *lengths, const int *formats,
                          pgconn_result_cb cb, void *ud);

/* The one bigint of a one-row result ("SELECT f()"): 0 and *out when res is
 * PGRES_TUPLES_OK with exactly one row whose first column is a non-NULL
 * integer; -1 otherwise (an error, no row, several rows, NULL, not a number). */
int pgconn_result_int8(const PGresult *res, int64_t *out);

int pgconn_is_ready(const struct pgconn *c);
const char *pgconn_state_name(const struct pgconn *c);   /* "connecting", "ready", "backoff", "closed" */
int pgconn_queue_length(const struct pgconn *c);

#endif
