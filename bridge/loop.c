/*
 * loop.c: owns foreign descriptors and timers inside the libwebsockets
 * loop.  A watched fd is a dup() adopted as an LWS raw file; lws closes its
 * copy, never the caller's.  Timers are lws sorted-usec-list entries.
 */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
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
