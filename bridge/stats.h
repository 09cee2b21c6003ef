/*
 * stats.h: the store's numbers /metrics shows (the drain's lag and dead
 * letters, the open publishers), cached: the drain's are read at most once
 * a second however often /metrics is asked, the publishers' every few
 * seconds by a timer, which also logs a warning when one publishing
 * transaction has held every reader back past --publisher-warn-seconds.
 */
#ifndef AEGIS_STATS_H
#define AEGIS_STATS_H

struct bridge;
struct stats;

struct stats_values {
    int have_drain;                  /* aegis.drain_status() was read */
    double cursor, pending, lag_s, dead_letters;
    int have_publishers;             /* aegis.publisher_status() was read */
    double open_publishers, oldest_age_s;
};

struct stats *stats_new(struct bridge *b);
void stats_free(struct stats *s);    /* NULL is fine; waiters are called first */

/* cb(ud) once the values are at most a second old, or at once when they are
 * (or when the store cannot be asked): returns 1 if called at once, 0 if later */
typedef void (*stats_cb)(void *ud);
int stats_when_fresh(struct stats *s, stats_cb cb, void *ud);
const struct stats_values *stats_values(const struct stats *s);

#endif
