/*
 * loop.h: the one event loop of aegis-bridge (the libwebsockets service
 * loop) as the other modules see it: foreign file descriptors watched for
 * readability (and, on request, writability), one-shot timers and the
 * retry backoff they are scheduled with.
 * Nothing here blocks; every callback runs on the loop's thread.
 */
#ifndef AEGIS_LOOP_H
#define AEGIS_LOOP_H

#include <stdint.h>

struct bridge;                       /* defined in bridge.h; one per process */
struct loop_watch;                   /* a foreign fd in the lws loop */
typedef void (*loop_fd_cb)(void *ud);

/* Watch fd for readability; lws adopts a dup() of it (it closes its own copy).
 * Returns NULL (and logs) on failure.  If lws drops the descriptor (POLLHUP,
 * error), on_readable is called once more so the owner sees the EOF itself. */
struct loop_watch *loop_watch_fd(struct bridge *b, int fd, loop_fd_cb on_readable, void *ud);
/* Ask for one call of on_writable when fd can be written (libpq connect/flush). */
int loop_watch_want_write(struct loop_watch *w, loop_fd_cb on_writable);
void loop_watch_free(struct loop_watch *w);          /* stop watching; never closes the caller's fd */

/* A second watch on a descriptor lws owns (a client connection): on_readable
 * on every turn it is readable, until freed.  Only on the libev loop: NULL
 * (errno 0) on lws's poll loop, NULL (errno ENOMEM) when out of memory.  Free
 * it before lws closes the descriptor (its close callback is early enough). */
struct loop_peer;
struct loop_peer *loop_watch_peer(struct bridge *b, int fd, loop_fd_cb on_readable, void *ud);
void loop_peer_free(struct loop_peer *p);                          /* NULL is fine */

struct loop_timer;
typedef void (*loop_timer_cb)(void *ud);
struct loop_timer *loop_timer_new(struct bridge *b, loop_timer_cb cb, void *ud);
void loop_timer_schedule(struct loop_timer *t, int64_t delay_us);  /* re-arming replaces */
void loop_timer_cancel(struct loop_timer *t);
void loop_timer_free(struct loop_timer *t);                        /* NULL is fine */
int64_t loop_now_us(void);                                         /* monotonic */

/* The bridge's one retry schedule: a delay that starts at min_us, doubles
 * after every use up to max_us, and goes back to min_us on success. */
struct loop_backoff {
    int64_t min_us, max_us, next_us;
};
void loop_backoff_init(struct loop_backoff *b, int64_t min_us, int64_t max_us);
/* The delay to wait now; the next call returns twice as much (at most max_us). */
int64_t loop_backoff_next(struct loop_backoff *b);
/* The delay loop_backoff_next would return, without using it up. */
int64_t loop_backoff_peek(const struct loop_backoff *b);
void loop_backoff_reset(struct loop_backoff *b);

/* On the libev loop (b->evloop): service lws's timers before every poll
 * (lws 4.1.6's plugin can miss them; see loop.c).  Detach before the lws
 * context is destroyed. */
int loop_evlib_attach(struct bridge *b);
void loop_evlib_detach(struct bridge *b);

/* The lws protocol that carries adopted descriptors; main.c lists it. */
struct lws_protocols;
extern const struct lws_protocols loop_protocol;

#endif
