/*
 * main.c: wiring and the loop.  Parses the configuration, creates the lws
 * context (HTTP listener + adopted descriptors) on a libev loop (epoll), the
 * SSE hub and its PostgreSQL connections, the Kafka drain and consumers,
 * then serves until SIGTERM/SIGINT; shuts down in reverse order.  A second
 * signal exits at once.  SIGHUP reloads the TLS certificate (tls.c).
 */
#define _GNU_SOURCE
#include <ev.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "gate.h"
#include "connlimit.h"
#include "stats.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "sse.h"
#include "token.h"
#include "tls.h"
#include "consumer.h"
#include "drain.h"

extern char **environ;

static struct bridge main_bridge;          /* the one instance */
static volatile sig_atomic_t main_signals;

static void main_on_signal(int sig)
{
    (void)sig;
    if (main_signals++ > 0)
        _exit(1);                          /* second signal: at once */
    main_bridge.stopping = 1;
    if (main_bridge.ctx)
        lws_cancel_service(main_bridge.ctx);
}

/* SIGHUP: reload the TLS pair at the end of this loop turn */
static void main_on_hup(int sig)
{
    (void)sig;
    tls_request_reload();
    if (main_bridge.ctx)
        lws_cancel_service(main_bridge.ctx);
}

static void main_signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = main_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = main_on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

static void main_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/*
 * lws's own loop is poll(2): every turn costs O(open connections) in the
 * kernel and in lws (perf with 1,000 SSE clients: three quarters of the
 * bridge's CPU in sock_poll/tcp_poll).  Debian builds lws with libev as an
 * event-library plugin; on a libev loop of our own (epoll on Linux) a turn
 * costs O(ready descriptors).  Without the plugin, lws's poll loop serves.
 */
static struct lws_context *main_context_on_libev(struct bridge *b,
                                                 struct lws_context_creation_info *info)
{
    static void *loops[1];
    struct lws_context *ctx;

    b->evloop = ev_loop_new(EVFLAG_AUTO);
    if (!b->evloop)
        return NULL;
    loops[0] = b->evloop;
    info->options |= LWS_SERVER_OPTION_LIBEV;
    info->foreign_loops = loops;
    ctx = lws_create_context(info);
    if (ctx)
        return ctx;
    ev_loop_destroy(b->evloop);
    b->evloop = NULL;
    info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
    info->foreign_loops = NULL;
    LOG(LOG_WARN, "main", "msg=\"no lws context on the libev loop (is libwebsockets-evlib-ev "
        "installed?), trying lws's poll loop\"");
    return NULL;
}

/* one turn of the loop: wait for something to happen and serve it */
static void main_turn(struct bridge *b)
{
    if (b->evloop)
        ev_run(b->evloop, EVRUN_ONCE);
    else
        lws_service(b->ctx, 0);
}

static int main_create_context(struct bridge *b)
{
    static const struct lws_protocols protocols[] = {
        { "http", NULL, 0, 0, 0, NULL, 0 }, { NULL, NULL, 0, 0, 0, NULL, 0 },
        { NULL, NULL, 0, 0, 0, NULL, 0 } };
    static struct lws_protocols list[3];
    struct lws_context_creation_info info;

    memcpy(list, protocols, sizeof list);
    list[0] = http_protocol;
    list[1] = loop_protocol;
    memset(&info, 0, sizeof info);
    info.port = b->cfg.listen_port;
    info.iface = b->cfg.listen_host;
    info.protocols = list;
    info.user = b;
    info.max_http_header_data = 16384;
    info.timeout_secs_ah_idle = (unsigned)b->cfg.header_timeout_seconds;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    tls_vhost_options(b, &info);
    b->ctx = main_context_on_libev(b, &info);
    if (!b->ctx)
        b->ctx = lws_create_context(&info);
    if (!b->ctx) {
        LOG(LOG_ERROR, "main", "msg=\"cannot listen\" listen=%s:%d", b->cfg.listen_host,
            b->cfg.listen_port);
        return -1;
    }
    if (b->evloop && loop_evlib_attach(b) < 0)
        return -1;
    b->vhost = lws_get_vhost_by_name(b->ctx, "default");
    return b->vhost ? 0 : -1;
}

static int main_start(struct bridge *b)
{
    b->limits = limits_new(b);            /* before the listener can accept */
    if (!b->limits || main_create_context(b) < 0)
        return -1;
    b->sse = sse_hub_new(b);
    if (!b->sse)
        return -1;
    b->stats = stats_new(b);
    if (!b->stats)
        return -1;
    if (drain_start(b) < 0)
        return -1;
    if (consumers_start(b) < 0)
        return -1;
    LOG(LOG_INFO, "main", "msg=listening listen=%s:%d version=%s kafka=%s", b->cfg.listen_host,
        b->cfg.listen_port, BRIDGE_VERSION, b->cfg.kafka_bootstrap_servers ? "on" : "off");
    return 0;
}

static void main_wake_cb(void *ud)
{
    (void)ud;                              /* only ends a loop turn */
}

/* end streams, let them flush for up to 2 s */
static void main_end_streams(struct bridge *b)
{
    int64_t deadline = loop_now_us() + 2000000;
    struct loop_timer *wake;

    if (!b->sse)
        return;
    sse_close_all(b->sse);
    wake = loop_timer_new(b, main_wake_cb, NULL);
    if (wake)
        loop_timer_schedule(wake, 2000000);   /* a turn ends by the deadline */
    while (b->metrics.sse_connections > 0 && loop_now_us() < deadline && main_signals < 2)
        main_turn(b);
    loop_timer_free(wake);
}

static void main_stop(struct bridge *b)
{
    if (b->ctx)
        main_end_streams(b);
    consumers_stop(b);
    drain_stop(b);
    sse_hub_free(b->sse);
    b->sse = NULL;
    stats_free(b->stats);               /* after the queries in flight have failed */
    b->stats = NULL;
    if (b->evloop)
        loop_evlib_detach(b);
    limits_detach(b->limits);
    if (b->ctx)
        lws_context_destroy(b->ctx);
    b->ctx = NULL;
    limits_free(b->limits);
    b->limits = NULL;
    if (b->evloop)
        ev_loop_destroy(b->evloop);
    b->evloop = NULL;
}

/* authorization: refuses what deny-by-default forbids before anything listens */
static int main_gate(struct bridge *b)
{
    char *err = NULL;
    int rc = gate_start(b, &err);

    if (rc != 0) {
        fprintf(stderr, "aegis-bridge: %s\n", err ? err : "out of memory");
        LOG(LOG_ERROR, "main", "msg=\"not starting\" reason=\"%s\"", log_text(err));
        free(err);
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct bridge *b = &main_bridge;
    char *err = NULL;
    int rc = 0;

    if (argc > 1 && !strcmp(argv[1], "token"))
        return token_main(argc - 1, argv + 1, stdout, stderr);
    if (config_parse(&b->cfg, argc, argv, environ, &err) < 0) {
        fprintf(stderr, "aegis-bridge: %s\n", err ? err : "out of memory");
        free(err);
        return 2;
    }
    if (b->cfg.show_help || b->cfg.show_version) {
        fputs(b->cfg.show_help ? config_usage() : "aegis-bridge " BRIDGE_VERSION "\n", stdout);
        config_free(&b->cfg);
        return 0;
    }
    if (b->cfg.tls_cert && tls_check_pair(b->cfg.tls_cert, b->cfg.tls_key, &err) < 0) {
        fprintf(stderr, "aegis-bridge: %s\n", err ? err : "out of memory");
        free(err);
        config_free(&b->cfg);
        return 2;
    }
    log_set_level(b->cfg.log_level);
    log_hook_lws();
    main_signals_install();
    main_raise_fd_limit();
    if ((rc = main_gate(b)) != 0) {
        config_free(&b->cfg);
        return rc;
    }
    if (main_start(b) < 0)
        rc = 1;
    while (rc == 0 && !b->stopping) {
        main_turn(b);
        tls_reload_pending(b);
    }
    LOG(LOG_INFO, "main", "msg=\"shutting down\"");
    main_stop(b);
    gate_stop(b);
    config_free(&b->cfg);
    LOG(LOG_INFO, "main", "msg=stopped status=%d", rc);
    return rc;
}
