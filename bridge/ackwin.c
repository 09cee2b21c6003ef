/*
 * ackwin.c: the drain's in-flight window (see ackwin.h): a ring indexed by
 * sequence number, so an acknowledgement finds its entry in O(1) and the
 * acknowledged prefix is popped from the head.  The ring starts small and
 * doubles (up to the window's bound) when a push would not fit.
 */
#include "ackwin.h"

#include <stdlib.h>
#include <string.h>

static int ackwin_alloc(size_t slots, int64_t **ids, unsigned char **flags)
{
    *ids = calloc(slots, sizeof(**ids));
    *flags = calloc(slots, 1);
    if (*ids == NULL || *flags == NULL) {
        free(*ids);
        free(*flags);
        return -1;
    }
    return 0;
}

int ackwin_init(struct ackwin *w, size_t cap, int64_t acked)
{
    size_t slots = cap < ACKWIN_FIRST_SLOTS ? cap : ACKWIN_FIRST_SLOTS;

    memset(w, 0, sizeof(*w));
    if (cap == 0 || ackwin_alloc(slots, &w->ids, &w->acked_flags) < 0)
        return -1;
    w->cap = cap;
    w->slots = slots;
    w->acked = acked;
    return 0;
}

void ackwin_free(struct ackwin *w)
{
    free(w->ids);
    free(w->acked_flags);
    memset(w, 0, sizeof(*w));
}

void ackwin_reset(struct ackwin *w, int64_t acked)
{
    w->head = w->tail;
    w->acked = acked;
}

size_t ackwin_count(const struct ackwin *w)
{
    return (size_t)(w->tail - w->head);
}

int ackwin_full(const struct ackwin *w)
{
    return ackwin_count(w) >= w->cap;
}

/* twice the slots (at most cap), the in-flight entries moved to their new places */
static int ackwin_grow(struct ackwin *w)
{
    size_t slots = w->slots * 2 > w->cap ? w->cap : w->slots * 2;
    int64_t *ids;
    unsigned char *flags;
    uint64_t seq;

    if (ackwin_alloc(slots, &ids, &flags) < 0)
        return -1;
    for (seq = w->head; seq < w->tail; seq++) {
        ids[seq % slots] = w->ids[seq % w->slots];
        flags[seq % slots] = w->acked_flags[seq % w->slots];
    }
    free(w->ids);
    free(w->acked_flags);
    w->ids = ids;
    w->acked_flags = flags;
    w->slots = slots;
    return 0;
}

int ackwin_reserve(struct ackwin *w)
{
    if (ackwin_full(w))
        return -1;
    if (ackwin_count(w) < w->slots)
        return 0;
    return ackwin_grow(w);
}

uint64_t ackwin_push(struct ackwin *w, int64_t id)
{
    uint64_t seq = w->tail++;
    w->ids[seq % w->slots] = id;
    w->acked_flags[seq % w->slots] = 0;
    return seq;
}

int ackwin_ack(struct ackwin *w, uint64_t seq)
{
    int64_t before = w->acked;
    if (seq < w->head || seq >= w->tail)
        return -1;
    w->acked_flags[seq % w->slots] = 1;
    while (w->head < w->tail && w->acked_flags[w->head % w->slots]) {
        w->acked = w->ids[w->head % w->slots];
        w->head++;
    }
    return w->acked != before;
}

int64_t ackwin_id(const struct ackwin *w, uint64_t seq)
{
    if (seq < w->head || seq >= w->tail)
        return -1;
    return w->ids[seq % w->slots];
}
