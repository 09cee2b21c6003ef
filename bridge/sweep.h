/*
 * sweep.h: a paced walk over a list that is visited once per period (SSE
 * heartbeats, peer liveness checks).  Visiting every subscriber in one timer
 * callback blocks the loop for as long as that takes (19,000 heartbeat
 * writes held the loop ~130 ms and became the SSE p99); a sweep instead
 * visits a slice per tick, so a period's work is spread over the period.
 * The list belongs to the caller, who tells the sweep its first item, each
 * item's successor and its length, and calls sweep_forget before an item
 * leaves the list.  Pure: no timer or lws here; sweep_step says when to run
 * next, and the owner arms its timer with that (testable with a fake clock).
 */
#ifndef AEGIS_SWEEP_H
#define AEGIS_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#define SWEEP_TICK_US 100000        /* one slice every 100 ms while a round lasts */
#define SWEEP_MIN_SLICE 64          /* small lists: the whole round in one tick */

struct sweep_ops {
    void *(*first)(void *owner);
    void *(*next)(void *owner, void *item);
    size_t (*count)(void *owner);
    void (*visit)(void *owner, void *item);     /* may remove item (and only item) */
};

struct sweep {
    const struct sweep_ops *ops;
    void *owner;
    void *cursor;                   /* the next item of the round in progress */
    int in_round;
    size_t slice;                   /* items per tick in this round */
    int64_t next_round_us;          /* when the next round starts */
};

/* The first round starts at first_round_us (loop_now_us clock). */
void sweep_init(struct sweep *w, const struct sweep_ops *ops, void *owner, int64_t first_round_us);
/* Items per tick so that a round over n items ends within period_us
 * (at least SWEEP_MIN_SLICE). */
size_t sweep_slice(size_t n, int64_t period_us);
/* Visit what is due at now_us (starting a round when its time has come);
 * returns the delay until the next call, in microseconds (> 0). */
int64_t sweep_step(struct sweep *w, int64_t now_us, int64_t period_us);
/* item is leaving the list: a round in progress skips to its successor. */
void sweep_forget(struct sweep *w, void *item);

#endif
