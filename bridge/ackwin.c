/*
 * ackwin.c: the drain's in-flight window (see ackwin.h): a ring indexed by
 * sequence number, so an acknowledgement finds its entry in O(1) and the
 * acknowledged prefix is popped from the head.
 */
#include "ackwin.h"

#include <stdlib.h>
#include <string.h>

int ackwin_init(struct ackwin *w, size_t cap, int64_t acked)
{
    memset(w, 0, sizeof(*w));
    if (cap == 0)
        return -1;
    w->ids = calloc(cap, sizeof(*w->ids));
    w->acked_flags = calloc(cap, 1);
    if (w->ids == NULL || w->acked_flags == NULL) {
        ackwin_free(w);
        return -1;
    }
    w->cap = cap;
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

uint64_t ackwin_push(struct ackwin *w, int64_t id)
{
    uint64_t seq = w->tail++;
    w->ids[seq % w->cap] = id;
    w->acked_flags[seq % w->cap] = 0;
    return seq;
}

int ackwin_ack(struct ackwin *w, uint64_t seq)
{
    int64_t before = w->acked;
    if (seq < w->head || seq >= w->tail)
        return -1;
    w->acked_flags[seq % w->cap] = 1;
    while (w->head < w->tail && w->acked_flags[w->head % w->cap]) {
        w->acked = w->ids[w->head % w->cap];
        w->head++;
    }
    return w->acked != before;
}

int64_t ackwin_id(const struct ackwin *w, uint64_t seq)
{
    if (seq < w->head || seq >= w->tail)
        return -1;
    return w->ids[seq % w->cap];
}
