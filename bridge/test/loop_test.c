/*
 * loop_test.c: unit tests of loop.c on the libev loop, the way main.c runs
 * it (lws on a foreign libev loop, loop_evlib_attach).  They pin the two
 * ways lws 4.1.6's libev plugin fails to run lws timers on its own, which
 * loop.c's pump covers:
 *   - a timer due before the plugin's armed hrtimer (re-armed while active,
 *     which libev ignores) would wait for that hrtimer;
 *   - while a descriptor stays readable, the plugin's ev_idle never runs, so
 *     no timer fires and no LWS_TO_KILL_ASYNC close completes.
 * AEGIS_LOOP_TEST_NO_PUMP=1 runs without the pump: the checks then fail,
 * which shows what they test.  Every wait is bounded (LOOP_TEST_BOUND_US).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "loop.h"

#include "check.h"

#define LOOP_TEST_BOUND_US 10000000      /* a check gives up after 10 s */

static struct bridge B;

struct flag {
    int fired;
};

static void set_flag(void *ud)
{
    ((struct flag *)ud)->fired = 1;
}

/* a pipe's read side: drain it, or (spin) leave it readable for good */
struct pipe_watch {
    int fds[2];
    int drain;
    int calls;
};

static void on_pipe(void *ud)
{
    struct pipe_watch *p = ud;
    char buf[64];

    p->calls++;
    if (p->drain) {
        ssize_t n = read(p->fds[0], buf, sizeof buf);
        (void)n;
    }
}

static void tick(struct ev_loop *evloop, ev_timer *w, int revents)
{
    (void)evloop;
    (void)w;
    (void)revents;                /* only ends a turn, so waits stay bounded */
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;                 /* opendir's own descriptor */
}

/* turn the loop until *done or the bound passes; 1 if done */
static int turn_until(const int *done)
{
    int64_t end = loop_now_us() + LOOP_TEST_BOUND_US;

    while (!*done && loop_now_us() < end)
        ev_run(B.evloop, EVRUN_ONCE);
    return *done;
}

static int make_context(void)
{
    static struct lws_protocols protos[2];
    static void *loops[1];
    struct lws_context_creation_info info;

    protos[0] = loop_protocol;
    B.evloop = ev_loop_new(EVFLAG_AUTO);
    if (!B.evloop)
        return -1;
    loops[0] = B.evloop;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.user = &B;
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    B.ctx = lws_create_context(&info);
    if (!B.ctx)
        return -1;
    B.vhost = lws_get_vhost_by_name(B.ctx, "default");
    if (!B.vhost)
        return -1;
    if (getenv("AEGIS_LOOP_TEST_NO_PUMP"))
        return 0;
    return loop_evlib_attach(&B);
}

/* A 60-s timer is armed inside lws (after lws activity), then a 20-ms one is
 * scheduled and lws is active again: the short one must fire. */
static void test_early_timer(void)
{
    struct pipe_watch p = { { -1, -1 }, 1, 0 };
    struct flag long_f = { 0 }, short_f = { 0 };
    struct loop_timer *long_t = loop_timer_new(&B, set_flag, &long_f);
    struct loop_timer *short_t = loop_timer_new(&B, set_flag, &short_f);
    struct loop_watch *w;

    CHECK("early timer: pipe", pipe(p.fds) == 0);
    w = loop_watch_fd(&B, p.fds[0], on_pipe, &p);
    CHECK("early timer: pipe watched", w != NULL);
    loop_timer_schedule(long_t, 60 * 1000000LL);
    CHECK("early timer: lws sees the pipe", write(p.fds[1], "a", 1) == 1 && turn_until(&p.calls));
    for (int i = 0; i < 3; i++)
        ev_run(B.evloop, EVRUN_NOWAIT);          /* lws's idle pass arms its hrtimer */
    loop_timer_schedule(short_t, 20000);
    CHECK("early timer: lws active again", write(p.fds[1], "b", 1) == 1);
    CHECK("a timer due before lws's armed one fires", turn_until(&short_f.fired));
    CHECK("the later timer has not fired", !long_f.fired);
    loop_timer_free(long_t);
    loop_timer_free(short_t);
    loop_watch_free(w);
    close(p.fds[0]);
    close(p.fds[1]);
}

/* A descriptor lws reports readable on every turn (nobody reads it, as with
 * a closed SSE client): a timer still fires, and freeing the watch closes
 * lws's copy of the descriptor (an LWS_TO_KILL_ASYNC, itself a timer). */
static void test_readable_forever(void)
{
    struct pipe_watch p = { { -1, -1 }, 0, 0 };
    struct flag f = { 0 };
    struct loop_timer *t = loop_timer_new(&B, set_flag, &f);
    struct loop_watch *w;
    int before, during, closed = 0;
    int64_t end;

    CHECK("readable: pipe", pipe(p.fds) == 0 && write(p.fds[1], "x", 1) == 1);
    before = open_fds();
    w = loop_watch_fd(&B, p.fds[0], on_pipe, &p);
    during = open_fds();
    CHECK("readable: lws holds a copy of the descriptor", w != NULL && during == before + 1);
    CHECK("readable: lws reports it readable", turn_until(&p.calls));
    loop_timer_schedule(t, 10000);
    CHECK("a timer fires while a descriptor stays readable", turn_until(&f.fired));
    CHECK("readable: it was reported on many turns meanwhile", p.calls > 1);
    loop_watch_free(w);
    end = loop_now_us() + LOOP_TEST_BOUND_US;
    while (loop_now_us() < end && !(closed = open_fds() == before))
        ev_run(B.evloop, EVRUN_ONCE);
    CHECK("freeing the watch closes lws's copy although it stays readable", closed);
    loop_timer_free(t);
    close(p.fds[0]);
    close(p.fds[1]);
}

/* the retry schedule pgconn.c, drain.c and consumer.c share */
static void test_backoff(void)
{
    struct loop_backoff b;
    int64_t seen[6];
    int i;

    loop_backoff_init(&b, 100000, 500000);
    CHECK("backoff: peek shows the first delay without using it",
          loop_backoff_peek(&b) == 100000 && loop_backoff_peek(&b) == 100000);
    for (i = 0; i < 6; i++)
        seen[i] = loop_backoff_next(&b);
    CHECK("backoff: min, doubling, capped at max",
          seen[0] == 100000 && seen[1] == 200000 && seen[2] == 400000 && seen[3] == 500000
              && seen[4] == 500000 && seen[5] == 500000);
    loop_backoff_reset(&b);
    CHECK("backoff: reset starts from min again", loop_backoff_next(&b) == 100000);
}

int main(void)
{
    ev_timer ticker;

    lws_set_log_level(LLL_ERR, NULL);
    test_backoff();
    if (make_context() < 0) {
        CHECK("an lws context on a libev loop (libwebsockets-evlib-ev)", 0);
        return check_done("loop_test");
    }
    ev_timer_init(&ticker, tick, 0.05, 0.05);
    ev_timer_start(B.evloop, &ticker);
    test_early_timer();
    test_readable_forever();
    ev_timer_stop(B.evloop, &ticker);
    loop_evlib_detach(&B);
    lws_context_destroy(B.ctx);
    ev_loop_destroy(B.evloop);
    return check_done("loop_test");
}
