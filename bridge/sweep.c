/*
 * sweep.c: owns the pacing of periodic walks over the subscriber list
 * (see sweep.h): rounds start once per period; within a round each tick
 * visits one slice, the cursor skipping items that leave meanwhile.
 */
#include "sweep.h"

void sweep_init(struct sweep *w, const struct sweep_ops *ops, void *owner, int64_t first_round_us)
{
    w->ops = ops;
    w->owner = owner;
    w->cursor = NULL;
    w->in_round = 0;
    w->slice = SWEEP_MIN_SLICE;
    w->next_round_us = first_round_us;
}

size_t sweep_slice(size_t n, int64_t period_us)
{
    /* ticks of a round, leaving the last tick of the period free */
    int64_t ticks = period_us / SWEEP_TICK_US - 1;
    size_t slice;

    if (ticks < 1)
        ticks = 1;
    slice = (n + (size_t)ticks - 1) / (size_t)ticks;
    return slice < SWEEP_MIN_SLICE ? SWEEP_MIN_SLICE : slice;
}

int64_t sweep_step(struct sweep *w, int64_t now_us, int64_t period_us)
{
    size_t done;

    if (!w->in_round && now_us >= w->next_round_us) {
        w->in_round = 1;
        w->cursor = w->ops->first(w->owner);
        w->slice = sweep_slice(w->ops->count(w->owner), period_us);
        /* a late tick (a busy loop) does not make the rounds pile up */
        w->next_round_us = w->next_round_us + period_us > now_us ? w->next_round_us + period_us
                                                                  : now_us + period_us;
    }
    for (done = 0; w->in_round && done < w->slice; done++) {
        void *item = w->cursor;

        if (!item) {
            w->in_round = 0;
            break;
        }
        w->cursor = w->ops->next(w->owner, item);
        w->ops->visit(w->owner, item);
    }
    if (w->in_round && !w->cursor)
        w->in_round = 0;
    if (w->in_round)
        return SWEEP_TICK_US;
    return w->next_round_us - now_us > 0 ? w->next_round_us - now_us : 1;
}

void sweep_forget(struct sweep *w, void *item)
{
    if (w->in_round && w->cursor == item)
        w->cursor = w->ops->next(w->owner, item);
}
