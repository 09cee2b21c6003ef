/*
 * sweep_test.c: unit tests of sweep.c, the paced walk behind SSE heartbeats:
 * every item visited exactly once per round, rounds once per period, no
 * tick visiting more than its slice, a round of 19,000 items spread over
 * the period, items leaving during a round (the cursor's own, the visited
 * one) never visited after they left, and a late tick not piling rounds up.
 * A fake list and a fake clock; no loop.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep.h"

#include "check.h"

#define MAXN 20000

struct item {
    struct item *next, *prev;
    int visits;
    int gone;
};

struct list {
    struct item items[MAXN];
    struct item *head;
    size_t n;
    struct sweep *w;
    int visits_this_tick;
    int remove_on_visit;            /* index to unlink when visited, -1: none */
    int bad;                        /* a visit of an item that had left */
};

static void *l_first(void *o) { return ((struct list *)o)->head; }
static void *l_next(void *o, void *i) { (void)o; return ((struct item *)i)->next; }
static size_t l_count(void *o) { return ((struct list *)o)->n; }

static void l_unlink(struct list *l, struct item *it)
{
    sweep_forget(l->w, it);
    if (it->prev)
        it->prev->next = it->next;
    else
        l->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    it->gone = 1;
    l->n--;
}

static void l_visit(void *o, void *i)
{
    struct list *l = o;
    struct item *it = i;

    if (it->gone)
        l->bad = 1;
    it->visits++;
    l->visits_this_tick++;
    if (l->remove_on_visit >= 0 && it == &l->items[l->remove_on_visit])
        l_unlink(l, it);
}

static const struct sweep_ops ops = { l_first, l_next, l_count, l_visit };

static void l_init(struct list *l, struct sweep *w, size_t n)
{
    size_t i;

    memset(l, 0, sizeof *l);
    l->w = w;
    l->remove_on_visit = -1;
    for (i = 0; i < n; i++) {
        l->items[i].next = i + 1 < n ? &l->items[i + 1] : NULL;
        l->items[i].prev = i > 0 ? &l->items[i - 1] : NULL;
    }
    l->head = n ? &l->items[0] : NULL;
    l->n = n;
}

static int all_visits(const struct list *l, size_t n, int want)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!l->items[i].gone && l->items[i].visits != want)
            return 0;
    return 1;
}

static struct list L;

int main(void)
{
    const int64_t period = 15000000;
    struct sweep w;
    int64_t now = 0, d, round_end = 0;
    int max_tick = 0, ticks = 0;

    CHECK("slice: small lists in one tick", sweep_slice(10, period) == SWEEP_MIN_SLICE);
    CHECK("slice: 19,000 over 149 ticks of a 15 s period", sweep_slice(19000, period) == 128);
    CHECK("slice: a 1 s period still ends within the period", sweep_slice(19000, 1000000) == 2112);
    CHECK("slice: a period shorter than a tick is one tick", sweep_slice(19000, 50000) == 19000);

    /* 19,000 items, two rounds */
    l_init(&L, &w, 19000);
    sweep_init(&w, &ops, &L, period);
    d = sweep_step(&w, now, period);
    CHECK("before the first round: nothing visited, wait for it", L.visits_this_tick == 0 && d == period);
    for (now = period; now < 3 * period; now += d) {
        L.visits_this_tick = 0;
        d = sweep_step(&w, now, period);
        if (L.visits_this_tick > max_tick)
            max_tick = L.visits_this_tick;
        if (L.visits_this_tick)
            ticks++;
        if (now < 2 * period && d > SWEEP_TICK_US && !round_end)
            round_end = now;
    }
    CHECK("19,000 items: each visited once per round, two rounds", all_visits(&L, 19000, 2));
    CHECK("no tick visited more than its slice", max_tick == 128);
    CHECK("the round is spread over most of the period",
          round_end > period + period / 2 && round_end < 2 * period);
    CHECK("ticks of two rounds", ticks == 2 * 149);

    /* items leaving mid-round */
    l_init(&L, &w, 1000);
    sweep_init(&w, &ops, &L, 0);
    L.remove_on_visit = 10;
    d = sweep_step(&w, 0, period);                         /* visits 0..63 */
    CHECK("1,000 items: the first slice", L.visits_this_tick == 64 && d == SWEEP_TICK_US);
    l_unlink(&L, &L.items[64]);                            /* the cursor's item leaves */
    l_unlink(&L, &L.items[500]);
    for (now = d; now < period; now += d)
        d = sweep_step(&w, now, period);
    CHECK("items that left were never visited after", !L.bad && L.items[64].visits == 0 &&
          L.items[500].visits == 0);
    CHECK("the item removed by its own visit was visited once", L.items[10].visits == 1 && L.items[10].gone);
    CHECK("every other item visited once", all_visits(&L, 1000, 1) && L.items[999].visits == 1);

    /* a late tick: the next round is a period after it, not at once again */
    l_init(&L, &w, 5);
    sweep_init(&w, &ops, &L, 0);
    d = sweep_step(&w, 0, period);
    CHECK("small list: one tick per round, then wait a period", all_visits(&L, 5, 1) && d == period);
    d = sweep_step(&w, 5 * period, period);
    CHECK("a tick four periods late runs one round", all_visits(&L, 5, 2) && d == period);
    d = sweep_step(&w, 5 * period + 1, period);
    CHECK("and waits a period for the next", all_visits(&L, 5, 2) && d == period - 1);

    /* an empty list */
    l_init(&L, &w, 0);
    sweep_init(&w, &ops, &L, 0);
    d = sweep_step(&w, 0, period);
    CHECK("empty list: no visit, wait a period", L.visits_this_tick == 0 && d == period);
    return check_done("sweep");
}
