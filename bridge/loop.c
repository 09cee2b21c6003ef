/*
 * loop.c: owns foreign descriptors and timers inside the libwebsockets
 * loop.  A watched fd is a dup() adopted as an LWS raw file; lws closes its
 * copy, never the caller's.  A peer watch is a second libev watcher on a
 * descriptor lws owns.  Timers are lws sorted-usec-list entries; on the
 * libev loop a pump of ours services them (loop_evlib_attach).
 */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"

struct loop_watch {
    struct lws *wsi;          /* NULL once lws closed its copy */
    loop_fd_cb on_readable;
    loop_fd_cb on_writable;
    void *ud;
    int freeing;
};

struct loop_timer {
    lws_sorted_usec_list_t sul;   /* first member: the sul pointer is the timer */
    struct bridge *b;
    loop_timer_cb cb;
    void *ud;
};

int64_t loop_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int loop_protocol_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                            void *in, size_t len)
{
    struct loop_watch *w = lws_get_opaque_user_data(wsi);

    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (w && !w->freeing && w->on_readable)
            w->on_readable(w->ud);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (w && !w->freeing && w->on_writable) {
            loop_fd_cb cb = w->on_writable;
            w->on_writable = NULL;
            cb(w->ud);
        }
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!w)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        w->wsi = NULL;
        if (w->freeing)
            free(w);
        else if (w->on_readable)
            w->on_readable(w->ud);    /* let the owner see the hang-up itself */
        return 0;
    default:
        return 0;
    }
}

const struct lws_protocols loop_protocol = {
    "aegis-loop-fd", loop_protocol_cb, 0, 0, 0, NULL, 0
};

struct loop_watch *loop_watch_fd(struct bridge *b, int fd, loop_fd_cb on_readable, void *ud)
{
    struct loop_watch *w = calloc(1, sizeof *w);
    lws_sock_file_fd_type desc;
    int copy;

    if (!w)
        return NULL;
    copy = dup(fd);
    if (copy < 0) {
        LOG(LOG_ERROR, "loop", "msg=\"dup failed\" fd=%d errno=%d", fd, errno);
        free(w);
        return NULL;
    }
    w->on_readable = on_readable;
    w->ud = ud;
    memset(&desc, 0, sizeof desc);
    desc.filefd = copy;
    w->wsi = lws_adopt_descriptor_vhost(b->vhost, LWS_ADOPT_RAW_FILE_DESC, desc,
                                        loop_protocol.name, NULL);
    if (!w->wsi) {
        LOG(LOG_ERROR, "loop", "msg=\"adopt failed\" fd=%d", fd);
        close(copy);
        free(w);
        return NULL;
    }
    lws_set_opaque_user_data(w->wsi, w);
    return w;
}

int loop_watch_want_write(struct loop_watch *w, loop_fd_cb on_writable)
{
    if (!w || !w->wsi)
        return -1;
    w->on_writable = on_writable;
    return lws_callback_on_writable(w->wsi) < 0 ? -1 : 0;
}

void loop_watch_free(struct loop_watch *w)
{
    if (!w)
        return;
    if (!w->wsi) {
        free(w);
        return;
    }
    w->freeing = 1;
    /* lws closes its dup and calls RAW_CLOSE_FILE, which frees w */
    lws_set_timeout(w->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

struct loop_peer {
    ev_io io;                     /* first member: the watcher pointer is the peer */
    struct bridge *b;
    loop_fd_cb on_readable;
    void *ud;
};

static void loop_peer_ready(struct ev_loop *evloop, ev_io *w, int revents)
{
    struct loop_peer *p = (struct loop_peer *)w;

    (void)evloop;
    (void)revents;
    p->on_readable(p->ud);        /* may free p */
}

struct loop_peer *loop_watch_peer(struct bridge *b, int fd, loop_fd_cb on_readable, void *ud)
{
    struct loop_peer *p;

    errno = 0;
    if (!b->evloop)
        return NULL;
    p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->b = b;
    p->on_readable = on_readable;
    p->ud = ud;
    ev_io_init(&p->io, loop_peer_ready, fd, EV_READ);
    ev_io_start(b->evloop, &p->io);
    return p;
}

void loop_peer_free(struct loop_peer *p)
{
    if (!p)
        return;
    ev_io_stop(p->b->evloop, &p->io);
    free(p);
}

static void loop_timer_fire(lws_sorted_usec_list_t *sul)
{
    struct loop_timer *t = (struct loop_timer *)sul;

    t->cb(t->ud);
}

struct loop_timer *loop_timer_new(struct bridge *b, loop_timer_cb cb, void *ud)
{
    struct loop_timer *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->b = b;
    t->cb = cb;
    t->ud = ud;
    return t;
}

void loop_timer_schedule(struct loop_timer *t, int64_t delay_us)
{
    if (delay_us < 1)
        delay_us = 1;
    lws_sul_schedule(t->b->ctx, 0, &t->sul, loop_timer_fire, (lws_usec_t)delay_us);
}

void loop_timer_cancel(struct loop_timer *t)
{
    if (t)
        lws_sul_cancel(&t->sul);
}

void loop_timer_free(struct loop_timer *t)
{
    if (!t)
        return;
    lws_sul_cancel(&t->sul);
    free(t);
}

/*
 * The sul pump (libev loop only).  lws 4.1.6's libev plugin services lws's
 * timers (ours and its own: timeouts, LWS_TO_KILL_ASYNC) from an ev_idle
 * watcher and one hrtimer.  Both fail here: ev_idle never runs while some
 * descriptor stays readable (a closed SSE client, which lws 4.1 never reads,
 * is readable until it is killed, and the kill is itself a timer), and the
 * hrtimer is re-armed with ev_timer_set() on a watcher that may still be
 * active, which libev ignores, so a timer due before the armed one waits
 * (a 2-s drain lock retry never fired in one run of three).  Instead, before
 * every poll we service what is ripe and arm a timer of our own for the next
 * one.  __lws_sul_service_ripe() is exported for code that drives lws_sul
 * itself; the owner lists are found through an anchor entry lws inserted.
 */
struct loop_sul_pump {
    lws_sorted_usec_list_t anchor;     /* far in the future; its list owner is pt_sul_owner[0] */
    ev_prepare prepare;
    ev_timer due;
    struct bridge *b;
};

#define LOOP_ANCHOR_US ((lws_usec_t)3600 * 24 * 365 * 1000000)

static void loop_anchor_fire(lws_sorted_usec_list_t *sul)
{
    struct loop_sul_pump *p = (struct loop_sul_pump *)sul;

    lws_sul_schedule(p->b->ctx, 0, &p->anchor, loop_anchor_fire, LOOP_ANCHOR_US);
}

static void loop_pump_prepare(struct ev_loop *evloop, ev_prepare *w, int revents)
{
    struct loop_sul_pump *p = w->data;
    lws_dll2_owner_t *owners = p->anchor.list.owner;
    lws_usec_t next;

    (void)revents;
    if (!owners)
        return;
    next = __lws_sul_service_ripe(owners, LWS_COUNT_PT_SUL_OWNERS, lws_now_usecs());
    ev_timer_stop(evloop, &p->due);
    if (next > 0) {
        ev_timer_set(&p->due, (ev_tstamp)next / 1e6, 0.);
        ev_timer_start(evloop, &p->due);
    }
}

static void loop_pump_due(struct ev_loop *evloop, ev_timer *w, int revents)
{
    (void)evloop;
    (void)w;
    (void)revents;               /* only ends the poll; the next prepare services */
}

int loop_evlib_attach(struct bridge *b)
{
    struct loop_sul_pump *p = calloc(1, sizeof *p);

    if (!p)
        return -1;
    p->b = b;
    lws_sul_schedule(b->ctx, 0, &p->anchor, loop_anchor_fire, LOOP_ANCHOR_US);
    ev_prepare_init(&p->prepare, loop_pump_prepare);
    p->prepare.data = p;
    ev_timer_init(&p->due, loop_pump_due, 0., 0.);
    ev_prepare_start(b->evloop, &p->prepare);
    b->sul_pump = p;
    return 0;
}

void loop_evlib_detach(struct bridge *b)
{
    struct loop_sul_pump *p = b->sul_pump;

    if (!p)
        return;
    ev_prepare_stop(b->evloop, &p->prepare);
    ev_timer_stop(b->evloop, &p->due);
    lws_sul_cancel(&p->anchor);
    free(p);
    b->sul_pump = NULL;
}

void loop_backoff_init(struct loop_backoff *b, int64_t min_us, int64_t max_us)
{
    b->min_us = min_us;
    b->max_us = max_us;
    b->next_us = min_us;
}

int64_t loop_backoff_next(struct loop_backoff *b)
{
    int64_t now = b->next_us;

    b->next_us = now > b->max_us / 2 ? b->max_us : now * 2;
    return now;
}

int64_t loop_backoff_peek(const struct loop_backoff *b)
{
    return b->next_us;
}

void loop_backoff_reset(struct loop_backoff *b)
{
    b->next_us = b->min_us;
}
