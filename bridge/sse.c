/*
 * sse.c: owns SSE subscribers and streams.  One shared live reader follows
 * the store on its own connection with aegis.wait_all (a long poll that the
 * publishing commit itself wakes; no LISTEN/NOTIFY hop, no extra round
 * trip) and fans each event out to the subscribers of its stream.  A new
 * subscriber first replays its stream with aegis.read_stream on the second
 * connection.  Safe positions only grow, so a replay query covers every
 * live event fanned out before it was sent; live events that arrive while
 * it is in flight are held (bounded) and queued after it, and ids >
 * delivered dedupe.  If the held events overflow they are dropped and
 * another replay round, sent after the drop, covers them.  A subscriber
 * whose buffer cannot take a live event falls back to that same catch-up
 * from the store; one that makes no progress for a whole heartbeat interval
 * with its buffer half full is disconnected.
 */
#define _GNU_SOURCE
#include "sse.h"

#include <errno.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bridge.h"
#include "buf.h"
#include "connlimit.h"
#include "log.h"
#include "h2.h"
#include "loop.h"
#include "netstat.h"
#include "pgconn.h"
#include "sweep.h"
#include "tls.h"

#define SSE_BUCKETS 4096
#define SSE_READ_BATCH 1000
#define SSE_REPLAY_BATCH 200
#define SSE_WRITE_CHUNK 65536
#define SSE_WAIT_MS 1000            /* aegis.wait_all timeout: one empty poll a second when idle */
#define SSE_WAIT_STMT "aegis_sse_wait"

static const char SQL_SAFE_POSITION[] = "SELECT aegis.safe_position()";
static const char SQL_WAIT_ALL[] =
    "SELECT id, stream_kind, stream_id, event_type, payload::text "
    "FROM aegis.wait_all($1::bigint, $2::int, $3::int)";
/* a replay batch bounded by bytes as well as events: the rows whose payloads
 * before them sum to less than $5 (so always the first), and how many rows
 * the batch had before that cut */
static const char SQL_READ_STREAM[] =
    "SELECT id, event_type, p, total FROM (SELECT id, event_type, p, "
    "count(*) OVER () AS total, sum(octet_length(p)) OVER (ORDER BY id) - octet_length(p) AS before "
    "FROM (SELECT id, event_type, payload::text AS p "
    "FROM aegis.read_stream($1, $2, $3::bigint, $4::int)) r) b WHERE before < $5::bigint ORDER BY id";
static const char SQL_REQUEST_RUN[] = "SELECT aegis.request_run($1, $2, $3, $4)";
/* finished: the last conversation event at or before N is done/error, no run
 * was requested after it up to N, and nothing follows N */
static const char SQL_FINISHED_AT[] = "SELECT aegis.conversation_finished($1, $2::bigint)";
/* the conversation's latest run request id (0: none): a request without
 * message and without Last-Event-ID replays the events after it, so a page
 * opened after the run ended still shows it (and the stream ends after its
 * done/error like a live run's) */
static const char SQL_LATEST_RUN[] = "SELECT aegis.conversation_latest_run($1)";
/* a resume's first replay batch: read_stream's rows, or (the client's id is
 * below the stream's retention horizon) a last row with a NULL id, the
 * position to replay the retained events after, and the horizon */
static const char SQL_READ_STREAM_RESUME[] =
    "SELECT id, event_type, payload, horizon FROM aegis.read_stream_resume($1, $2, $3::bigint, $4::int)";

enum sse_phase { PH_STARTING, PH_REPLAY, PH_LIVE, PH_ENDING };

struct sse_stream {
    struct sse_stream *next_in_bucket;
    enum sse_kind kind;
    char *id;
    struct sse_sub *subs;
};

/* a live event that arrived while the subscriber's replay was in flight */
struct sse_held {
    struct sse_held *next;
    long long id;
    int terminal;
    size_t len;
    char msg[];
};

struct sse_sub {
    struct sse_hub *h;
    struct lws *wsi;                /* NULL once the connection closed */
    struct sse_stream *st;          /* NULL when not subscribed */
    struct sse_sub *prev, *next;    /* in st->subs */
    struct sse_sub *all_prev, *all_next;
    enum sse_phase phase;
    enum sse_kind kind;
    char *stream_id, *message, *agent_id, *agent_type, *cors_origin;
    char *key;                      /* ?stream_key=, or NULL (sse_close_key) */
    int cors_credentials;
    int has_last_id;
    long long last_id;
    int status;                     /* 0 undecided, 200, 204, 400, 409, 500, 503 */
    const char *refusal;            /* 400/409: the one-line body (a constant) */
    int headers_sent;
    int pending;                    /* queries in flight that reference this sub */
    int replay_paused;              /* waiting for the buffer to drain */
    int killed;                     /* dropped or shutting down */
    struct sse_sub *dirty_next;     /* in h->dirty while a batch is fanned out */
    int dirty;
    long long delivered;            /* highest event id queued */
    uint64_t written;               /* bytes handed to lws so far */
    uint64_t written_mark;          /* written at the previous heartbeat tick */
    int idle_beats;                 /* heartbeats in a row with data waiting and none taken */
    int replay_limit;               /* events the replay query in flight asked for */
    struct limits_ip *ip;            /* the client address's stream count (connlimit.c) */
    struct buf out;                 /* LWS_PRE headroom, then out.len bytes to send */
    struct sse_held *held, **held_tail;
    size_t held_bytes;
    unsigned held_drops;            /* times held events were dropped (overflow) */
    unsigned replay_drops;          /* held_drops when the replay query was sent */
    struct loop_peer *peer;         /* libev loop, h1: watches the client's close */
    int64_t beat_at_us;             /* when the heartbeat sweep last looked at it (0: never) */
    enum netstat_proto proto;       /* counted open on it (netstat) */
};

#define SSE_POOL_MAX 64

struct sse_hub {
    struct bridge *b;
    struct pgconn *pool[SSE_POOL_MAX];  /* replays, conversation queries, /metrics */
    int npool;
    struct pgconn *pg;              /* pool[0] */
    struct pgconn *live;            /* the live reader's long poll */
    struct sse_stream *buckets[SSE_BUCKETS];
    struct sse_sub *all;
    size_t nall;                    /* subscribers in all */
    int batching;                   /* fanning out a batch: sends wait for its end */
    struct sse_sub *dirty;          /* subscribers given data during the batch */
    struct loop_timer *heartbeat;
    struct loop_timer *reread;
    struct loop_timer *liveness;
    struct sweep beat;              /* heartbeats, paced over the interval (sweep.h) */
    struct sweep live_sweep;        /* lws's poll loop: closed-client checks, paced likewise */
    long long last_seen;            /* shared reader position */
    int have_position;
    int reading;                    /* a live reader query is in flight */
};

static void sse_replay_next(struct sse_sub *s);

/* ---------- pure helpers ---------- */

/* len in [min, max] and every byte an ASCII letter, digit or one of extra */
static int sse_chars_ok(const char *s, size_t len, size_t min, size_t max, const char *extra)
{
    size_t i;

    if (len < min || len > max)
        return 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr(extra, c))))
            return 0;
    }
    return 1;
}

int sse_id_valid(const char *id, size_t len)
{
    return sse_chars_ok(id, len, 1, 128, "_.:-");
}

int sse_key_valid(const char *key, size_t len)
{
    return sse_chars_ok(key, len, 16, 64, "_-");
}

int sse_parse_event_id(const char *s, long long *out)
{
    size_t i, n = strlen(s);
    unsigned long long v = 0;

    if (n < 1 || n > 19)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (v > 9223372036854775807ULL)
        return -1;
    *out = (long long)v;
    return 0;
}

char *sse_format_event(long long id, const char *type, const char *data, size_t *len)
{
    size_t dl = strlen(data), nl = 0, i, cap, off;
    char *out;

    for (i = 0; i < dl; i++)
        nl += data[i] == '\n';
    cap = 64 + strlen(type) + dl + nl * 6;
    out = malloc(cap);
    if (!out)
        return NULL;
    off = (size_t)snprintf(out, cap, "id: %lld\nevent: %s\ndata: ", id, type);
    for (i = 0; i < dl; i++) {
        if (data[i] == '\r')
            continue;
        if (data[i] == '\n') {
            memcpy(out + off, "\ndata: ", 7);
            off += 7;
        } else {
            out[off++] = data[i];
        }
    }
    memcpy(out + off, "\n\n", 3);
    *len = off + 2;
    return out;
}

/* ---------- streams ---------- */

static unsigned sse_hash(enum sse_kind kind, const char *id)
{
    unsigned h = 2166136261u ^ (unsigned)kind;

    while (*id)
        h = (h ^ (unsigned char)*id++) * 16777619u;
    return h % SSE_BUCKETS;
}

static struct sse_stream *sse_stream_find(struct sse_hub *h, enum sse_kind kind, const char *id)
{
    struct sse_stream *st = h->buckets[sse_hash(kind, id)];

    while (st && (st->kind != kind || strcmp(st->id, id) != 0))
        st = st->next_in_bucket;
    return st;
}

static int sse_subscribe(struct sse_sub *s)
{
    struct sse_hub *h = s->h;
    struct sse_stream *st = sse_stream_find(h, s->kind, s->stream_id);
    unsigned b;

    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st || !(st->id = strdup(s->stream_id))) {
            free(st);
            return -1;
        }
        st->kind = s->kind;
        b = sse_hash(s->kind, s->stream_id);
        st->next_in_bucket = h->buckets[b];
        h->buckets[b] = st;
    }
    s->st = st;
    s->prev = NULL;
    s->next = st->subs;
    if (st->subs)
        st->subs->prev = s;
    st->subs = s;
    return 0;
}

static void sse_unsubscribe(struct sse_sub *s)
{
    struct sse_stream *st = s->st, **pp;

    if (!st)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        st->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->st = NULL;
    if (st->subs)
        return;
    pp = &s->h->buckets[sse_hash(st->kind, st->id)];
    while (*pp != st)
        pp = &(*pp)->next_in_bucket;
    *pp = st->next_in_bucket;
    free(st->id);
    free(st);
}

/* ---------- subscribers ---------- */

static struct sse_held *sse_held_take(struct sse_sub *s)
{
    struct sse_held *list = s->held;

    s->held = NULL;
    s->held_tail = &s->held;
    s->held_bytes = 0;
    return list;
}

static void sse_held_free(struct sse_held *e)
{
    struct sse_held *next;

    for (; e; e = next) {
        next = e->next;
        free(e);
    }
}

static void sse_sub_free(struct sse_sub *s)
{
    struct sse_hub *h = s->h;

    sse_held_free(sse_held_take(s));
    sse_unsubscribe(s);
    loop_peer_free(s->peer);
    limits_ip_release(s->h->b->limits, s->ip);
    s->ip = NULL;
    sweep_forget(&h->beat, s);
    sweep_forget(&h->live_sweep, s);
    h->nall--;
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        h->all = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
    free(s->stream_id);
    free(s->message);
    free(s->agent_id);
    free(s->agent_type);
    free(s->cors_origin);
    free(s->key);
    buf_free(&s->out);
    free(s);
}

/* a query callback's entry: 1 if the sub is gone (and freed now) */
static int sse_sub_release(struct sse_sub *s)
{
    s->pending--;
    if (s->wsi)
        return 0;
    if (s->pending == 0)
        sse_sub_free(s);
    return 1;
}

static void sse_sub_kill(struct sse_sub *s, const char *why)
{
    if (s->killed)
        return;
    s->killed = 1;
    loop_peer_free(s->peer);
    s->peer = NULL;
    s->phase = PH_ENDING;
    sse_unsubscribe(s);
    LOG(LOG_INFO, "sse", "msg=\"closing stream\" reason=%s stream=%s queued=%zu", why, s->stream_id,
        s->out.len);
    if (!s->wsi)
        return;
    if (s->headers_sent)            /* HTTP/2: lws would close the stream silently */
        (void)h2_end_stream(s->wsi);
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* A subscriber's buffer starts small: an idle stream keeps its first
 * allocation for as long as it is open (4096 was two thirds of an idle
 * connection's memory at 19,000 connections); it doubles as events need. */
#define SSE_BUF_FIRST 512

static int sse_buf_reserve(struct sse_sub *s, size_t extra)
{
    return buf_reserve(&s->out, LWS_PRE + extra, SSE_BUF_FIRST);
}

static void sse_drop(struct sse_sub *s, const char *why)
{
    s->h->b->metrics.sse_drops++;
    sse_sub_kill(s, why);
}

/* off bytes at the front of the buffer went out */
static void sse_consumed(struct sse_sub *s, size_t off)
{
    memmove(s->out.p + LWS_PRE, s->out.p + LWS_PRE + off, s->out.len - off);
    s->out.len -= off;
    s->written += off;
    if (s->out.len == 0 && s->out.cap > 65536)   /* give a burst's memory back */
        buf_free(&s->out);
}

/*
 * Written by hand around lws on purpose: lws 4.1 lets a body be written only
 * from the WRITEABLE callback, one loop turn (two system calls, and on lws's
 * poll(2) fallback O(open connections)) after lws_callback_on_writable, for
 * every subscriber of every event.  On a plain-text HTTP/1
 * connection whose headers are out and with nothing pending inside lws, the
 * body of an SSE response (no content length, so no chunking or framing) is
 * exactly the bytes lws_write would send: send them now.  What the socket
 * does not take, and every error, is left to the writeable callback and
 * lws_write as before.
 */
static void sse_send_now(struct sse_sub *s)
{
    ssize_t n;

    if (!s->wsi || !s->headers_sent || s->status != 200 || lws_is_ssl(s->wsi) ||
        lws_get_network_wsi(s->wsi) != s->wsi || lws_partial_buffered(s->wsi))
        return;
    n = send(lws_get_socket_fd(s->wsi), s->out.p + LWS_PRE, s->out.len,
             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0)
        sse_consumed(s, (size_t)n);
}

/* queue bytes; 1 when bounded data does not fit (nothing queued), -1 on failure */
static int sse_append(struct sse_sub *s, const char *data, size_t n, int bounded)
{
    if (s->killed)
        return -1;
    if (bounded && s->out.len + n > s->h->b->cfg.client_buffer_bytes)
        return 1;
    if (sse_buf_reserve(s, n) < 0) {
        sse_sub_kill(s, "out_of_memory");
        return -1;
    }
    memcpy(s->out.p + LWS_PRE + s->out.len, data, n);
    s->out.len += n;
    if (s->h->batching) {            /* one send for the whole batch: sse_flush_dirty */
        if (!s->dirty) {
            s->dirty = 1;
            s->dirty_next = s->h->dirty;
            s->h->dirty = s;
        }
        return 0;
    }
    if (s->out.len == n)                 /* nothing was waiting for a writeable callback */
        sse_send_now(s);
    if (s->out.len > 0 && s->wsi && s->headers_sent)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* a live subscriber that fell behind reads on from the store, paced by its buffer */
static void sse_catch_up(struct sse_sub *s)
{
    s->phase = PH_REPLAY;
    s->h->b->metrics.sse_catchups++;
    sse_replay_next(s);
}

static int sse_is_terminal(const struct sse_sub *s, const char *type)
{
    return s->kind == SSE_CONVERSATION && (!strcmp(type, "done") || !strcmp(type, "error"));
}

/* queue one event if it is new for this subscriber */
static void sse_deliver(struct sse_sub *s, long long id, int terminal, const char *msg,
                        size_t n, int bounded)
{
    int r;

    if (id <= s->delivered || s->phase == PH_ENDING)
        return;
    r = sse_append(s, msg, n, bounded);
    if (r > 0) {
        sse_catch_up(s);         /* the store has it: read it when the buffer drains */
        return;
    }
    if (r < 0)
        return;
    s->delivered = id;
    s->h->b->metrics.sse_events_sent++;
    if (terminal) {
        s->phase = PH_ENDING;        /* close once flushed (sse_writeable) */
        sse_unsubscribe(s);
        if (s->wsi && s->headers_sent)
            lws_callback_on_writable(s->wsi);
    }
}

/* keep a live event for after the replay in flight; on overflow drop them all
 * (another replay round will read them from the store) */
static void sse_hold(struct sse_sub *s, long long id, int terminal, const char *msg, size_t n)
{
    struct sse_held *e;

    if (id <= s->delivered)
        return;
    if (s->held_bytes + n > s->h->b->cfg.client_buffer_bytes ||
        !(e = malloc(sizeof *e + n))) {
        sse_held_free(sse_held_take(s));
        s->held_drops++;
        s->h->b->metrics.sse_held_drops++;
        return;
    }
    e->next = NULL;
    e->id = id;
    e->terminal = terminal;
    e->len = n;
    memcpy(e->msg, msg, n);
    *s->held_tail = e;
    s->held_tail = &e->next;
    s->held_bytes += n;
}

static void sse_decide(struct sse_sub *s, int status)
{
    s->status = status;
    if (s->wsi)
        lws_callback_on_writable(s->wsi);
}

static void sse_fail(struct sse_sub *s, PGresult *res, const char *what)
{
    LOG(LOG_ERROR, "sse", "msg=\"query failed\" query=%s stream=%s error=\"%s\"", what,
        s->stream_id, res ? log_text(PQresultErrorMessage(res)) : "connection lost");
    if (!s->headers_sent)
        sse_decide(s, res ? 500 : 503);
    else
        sse_sub_kill(s, "store_error");
}

static int sse_result_ok(PGresult *res)
{
    return res && PQresultStatus(res) == PGRES_TUPLES_OK;
}

/* ---------- replay ---------- */

/* the replay reached the store's end: queue what was held, then go live */
static void sse_go_live(struct sse_sub *s)
{
    struct sse_held *list = s->held, *e;

    LOG(LOG_DEBUG, "sse", "msg=\"stream live\" stream=%s delivered=%lld held_bytes=%zu queue=%d",
        s->stream_id, s->delivered, s->held_bytes, pgconn_queue_length(sse_pg_pick(s->h)));
    sse_held_take(s);
    s->phase = PH_LIVE;
    if (s->status == 0)
        sse_decide(s, 200);
    /* a catch-up started here re-reads the rest from the store */
    for (e = list; e && s->phase == PH_LIVE; e = e->next)
        sse_deliver(s, e->id, e->terminal, e->msg, e->len, 1);
    sse_held_free(list);
}

static void sse_flush_dirty(struct sse_hub *h);

static void sse_replay_apply(struct sse_sub *s, PGresult *res)
{
    int i, n, total;
    size_t len;
    char *msg;

    if (!sse_result_ok(res)) {
        sse_fail(s, res, "read_stream");
        return;
    }
    n = PQntuples(res);
    /* rows before the byte cut (SQL_READ_STREAM's "total"), else all of them */
    total = n > 0 && PQfnumber(res, "total") >= 0 ? atoi(PQgetvalue(res, 0, PQfnumber(res, "total"))) : n;
    for (i = 0; i < n && s->phase == PH_REPLAY; i++) {
        long long id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        const char *type = PQgetvalue(res, i, 1);
        msg = sse_format_event(id, type, PQgetvalue(res, i, 2), &len);
        if (!msg) {
            sse_sub_kill(s, "out_of_memory");
            return;
        }
        sse_deliver(s, id, sse_is_terminal(s, type), msg, len, 0);
        free(msg);
        s->h->b->metrics.sse_replayed_events++;
    }
    if (s->phase != PH_REPLAY) {            /* a conversation ended inside the replay */
        if (s->status == 0)
            sse_decide(s, 200);
        return;
    }
    if (n == total && n < s->replay_limit && s->replay_drops == s->held_drops)
        sse_go_live(s);
    else
        sse_replay_next(s);
}

static void sse_on_replay(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_sub *s = ud;

    (void)c;
    if (sse_sub_release(s) || s->killed)
        return;
    s->h->batching = 1;
    sse_replay_apply(s, res);
    sse_flush_dirty(s->h);
}

/* the next replay batch, once the client has taken half of what waits; at
 * most the room left in its buffer (and one event, however large) */
static void sse_replay_next(struct sse_sub *s)
{
    char after[24], batch[16], room[24];
    const char *params[5];
    size_t bound = s->h->b->cfg.client_buffer_bytes;

    if (s->out.len > bound / 2 && s->status == 200) {
        s->replay_paused = 1;               /* resumed from sse_writeable */
        return;
    }
    snprintf(room, sizeof room, "%zu", s->out.len < bound ? bound - s->out.len : 1);
    s->replay_paused = 0;
    snprintf(after, sizeof after, "%lld", s->delivered);
    snprintf(batch, sizeof batch, "%d", SSE_REPLAY_BATCH);
    params[0] = s->kind == SSE_WORKSPACE ? "workspace" : "conversation";
    params[1] = s->stream_id;
    params[2] = after;
    params[3] = batch;
    params[4] = room;
    s->replay_limit = SSE_REPLAY_BATCH;
    s->pending++;
    s->replay_drops = s->held_drops;
    if (pgconn_query(sse_pg_pick(s->h), SQL_READ_STREAM, 5, params, sse_on_replay, s) < 0) {
        s->pending--;
        sse_fail(s, NULL, "read_stream");
    }
}

/* the replay starts after `after`: live events are held from now on */
static void sse_replay_begin(struct sse_sub *s, long long after)
{
    s->delivered = after;
    s->phase = PH_REPLAY;
    if (s->status == 0)
        sse_decide(s, 200);             /* headers go out now; replay is paced */
    s->h->b->metrics.sse_replays++;
}

static void sse_start_replay(struct sse_sub *s, long long after, int send_id_line)
{
    char line[40];
    int n;

    if (send_id_line && after > 0) {
        /* an SSE message with only an id: sets lastEventId, dispatches nothing */
        n = snprintf(line, sizeof line, "id: %lld\n\n", after);
        sse_append(s, line, (size_t)n, 0);
    }
    sse_replay_begin(s, after);
    sse_replay_next(s);
}

/* ---------- resume below the retention horizon ---------- */

/* Events at or below the horizon may have been removed by retention: a
 * client resuming below it gets `event: reset` and the retained events.  The
 * first batch comes with the horizon read after its rows (one statement,
 * aegis.read_stream_resume), so a removal between check and read is seen. */
static void sse_on_resume(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_sub *s = ud;
    long long horizon;
    char msg[96];
    int n, rows;

    (void)c;
    if (sse_sub_release(s) || s->killed)
        return;
    rows = sse_result_ok(res) ? PQntuples(res) : 0;
    if (rows == 0 || !PQgetisnull(res, rows - 1, 0)) {
        s->h->batching = 1;
        sse_replay_apply(s, res);       /* no reset: an ordinary replay batch */
        sse_flush_dirty(s->h);
        return;
    }
    horizon = strtoll(PQgetvalue(res, rows - 1, 3), NULL, 10);
    n = snprintf(msg, sizeof msg,
                 "event: reset\ndata: {\"horizon\": %lld, \"reason\": \"retention\"}\n\n", horizon);
    sse_append(s, msg, (size_t)n, 0);
    LOG(LOG_INFO, "sse", "msg=\"resume below the retention horizon: reset\" stream=%s last_id=%lld horizon=%lld",
        s->stream_id, s->last_id, horizon);
    s->delivered = strtoll(PQgetvalue(res, rows - 1, 2), NULL, 10);
    sse_replay_next(s);
}

/* replay after the client's Last-Event-ID, unless retention removed part of it */
static void sse_resume(struct sse_sub *s)
{
    char after[24], batch[16];
    const char *params[4];

    if (!s->has_last_id || s->last_id <= 0) {
        sse_start_replay(s, 0, 0);
        return;
    }
    sse_replay_begin(s, s->last_id);
    snprintf(after, sizeof after, "%lld", s->last_id);
    /* one event: read_stream_resume's batch is not cut by bytes; the rest
     * of the replay is (SQL_READ_STREAM) */
    s->replay_limit = 1;
    snprintf(batch, sizeof batch, "%d", s->replay_limit);
    params[0] = s->kind == SSE_WORKSPACE ? "workspace" : "conversation";
    params[1] = s->stream_id;
    params[2] = after;
    params[3] = batch;
    s->pending++;
    s->replay_drops = s->held_drops;
    if (pgconn_query(sse_pg_pick(s->h), SQL_READ_STREAM_RESUME, 4, params, sse_on_resume, s) < 0) {
        s->pending--;
        sse_fail(s, NULL, "read_stream_resume");
    }
}

/* ---------- conversation start ---------- */

/*
 * aegis.request_run refuses a run with a distinct SQLSTATE each: 23503, the
 * agent type has no aegis.configure_agent row (400); 23P01, the conversation
 * already has aegis.max_open_runs open runs (409).  Returns 1 when res is
 * one of them and the subscriber was answered.  The body is a constant: the
 * client's own values are not echoed.
 */
static int sse_refuse_run(struct sse_sub *s, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (!state || s->headers_sent)
        return 0;
    if (strcmp(state, "23503") == 0) {
        s->refusal = "bad request: agent_type is not configured for runs\n";
        s->h->b->metrics.http_bad_requests++;
        sse_decide(s, 400);
    } else if (strcmp(state, "23P01") == 0) {
        s->refusal = "conflict: this conversation already has an open run "
                     "(the same message follows it)\n";
        sse_decide(s, 409);
    } else {
        return 0;
    }
    LOG(LOG_INFO, "sse", "msg=\"run request refused\" stream=%s status=%d sqlstate=%s",
        s->stream_id, s->status, state);
    return 1;
}

static void sse_on_run_request(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_sub *s = ud;

    (void)c;
    if (sse_sub_release(s) || s->killed)
        return;
    if (!sse_result_ok(res) || PQntuples(res) != 1) {
        if (!sse_refuse_run(s, res))
            sse_fail(s, res, "request_run");
        return;
    }
    s->h->b->metrics.run_requests++;
    sse_start_replay(s, strtoll(PQgetvalue(res, 0, 0), NULL, 10), 1);
}

static void sse_on_finished_at(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_sub *s = ud;

    (void)c;
    if (sse_sub_release(s) || s->killed)
        return;
    if (!sse_result_ok(res) || PQntuples(res) != 1) {
        sse_fail(s, res, "finished_at");
        return;
    }
    if (PQgetvalue(res, 0, 0)[0] == 't') {
        sse_decide(s, 204);
        return;
    }
    sse_resume(s);
}

static void sse_on_latest_run(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_sub *s = ud;

    (void)c;
    if (sse_sub_release(s) || s->killed)
        return;
    if (!sse_result_ok(res) || PQntuples(res) != 1) {
        sse_fail(s, res, "latest_run");
        return;
    }
    sse_start_replay(s, strtoll(PQgetvalue(res, 0, 0), NULL, 10), 1);
}

static int sse_start(struct sse_sub *s)
{
    char last[24];
    const char *params[4];
    const char *sql;
    pgconn_result_cb cb;
    int n;

    if (s->kind == SSE_WORKSPACE) {
        sse_resume(s);
        return 0;
    }
    snprintf(last, sizeof last, "%lld", s->last_id);
    params[0] = s->stream_id;
    if (s->has_last_id) {
        sql = SQL_FINISHED_AT, cb = sse_on_finished_at, n = 2;
        params[1] = last;
    } else if (s->message) {
        sql = SQL_REQUEST_RUN, cb = sse_on_run_request, n = 4;
        params[1] = s->message;
        params[2] = s->agent_id;
        params[3] = s->agent_type;
    } else {
        sql = SQL_LATEST_RUN, cb = sse_on_latest_run, n = 1;
    }
    s->pending++;
    if (pgconn_query(sse_pg_pick(s->h), sql, n, params, cb, s) < 0) {
        s->pending--;
        return -1;
    }
    return 0;
}

static char *sse_dup_or_null(const char *v, int *failed)
{
    char *copy = v ? strdup(v) : NULL;

    if (v && !copy)
        *failed = 1;
    return copy;
}

int sse_open(struct sse_hub *h, struct lws *wsi, const struct sse_request *req, struct sse_sub **out)
{
    struct sse_sub *s;
    int failed = 0;
    char retry[40];
    int n;

    /* a replay must not start before the live reader has its position:
     * events between the two would reach neither */
    if (!sse_pg_ready(h) || h->b->metrics.sse_connections >= (uint64_t)h->b->cfg.max_clients) {
        h->b->metrics.sse_rejected++;
        return 503;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        return 503;
    if (h->b->limits && limits_ip_acquire(h->b->limits, wsi, &s->ip) < 0) {
        free(s);
        h->b->metrics.sse_rejected++;
        return 429;                     /* --max-clients-per-ip */
    }
    s->h = h;
    s->wsi = wsi;
    s->held_tail = &s->held;
    s->kind = req->kind;
    s->has_last_id = req->has_last_id;
    s->last_id = req->last_id;
    s->stream_id = sse_dup_or_null(req->stream_id, &failed);
    s->message = sse_dup_or_null(req->message, &failed);
    s->agent_id = sse_dup_or_null(req->agent_id, &failed);
    s->agent_type = sse_dup_or_null(req->agent_type, &failed);
    s->cors_origin = sse_dup_or_null(req->cors_origin, &failed);
    s->key = sse_dup_or_null(req->stream_key, &failed);
    s->cors_credentials = req->cors_credentials;
    s->all_next = h->all;
    if (h->all)
        h->all->all_prev = s;
    h->all = s;
    h->nall++;
    n = snprintf(retry, sizeof retry, "retry: %d\n\n", h->b->cfg.retry_ms);
    if (failed || sse_subscribe(s) < 0 || sse_append(s, retry, (size_t)n, 0) < 0 || sse_start(s) < 0) {
        s->wsi = NULL;
        if (s->pending == 0)
            sse_sub_free(s);
        h->b->metrics.sse_rejected++;
        return 503;
    }
    h->b->metrics.sse_connections++;
    h->b->metrics.sse_connections_total++;
    s->proto = netstat_proto_of(wsi);
    netstat_stream_opened(s->proto);
    *out = s;
    return 0;
}

/* ---------- writing ---------- */

static int sse_write_headers(struct sse_sub *s)
{
    unsigned char hbuf[LWS_PRE + 2048];
    unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof hbuf - 1;
    struct lws *wsi = s->wsi;
    int ok = s->status == 200;
    lws_filepos_t body_len = s->refusal ? strlen(s->refusal) : 0;

    if (lws_add_http_common_headers(wsi, (unsigned)s->status,
                                    ok ? "text/event-stream" : "text/plain; charset=utf-8",
                                    ok ? LWS_ILLEGAL_HTTP_CONTENT_LEN : body_len, &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache", 8, &p, end)
        || lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                       (const unsigned char *)"no", 2, &p, end)
        || lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                       (const unsigned char *)"nosniff", 7, &p, end))
        return -1;
    if (s->cors_credentials
        && lws_add_http_header_by_name(wsi,
                                       (const unsigned char *)"access-control-allow-credentials:",
                                       (const unsigned char *)"true", 4, &p, end))
        return -1;
    if (s->cors_origin &&
        (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                     (const unsigned char *)s->cors_origin,
                                     (int)strlen(s->cors_origin), &p, end) ||
         lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
                                     (const unsigned char *)"Origin", 6, &p, end)))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    s->headers_sent = 1;
    return 0;
}

/* the one-line body of a 400/409 answer, after its headers */
static int sse_write_refusal(struct sse_sub *s)
{
    unsigned char buf[LWS_PRE + 256];
    size_t n = strlen(s->refusal);

    if (n > sizeof buf - LWS_PRE)
        return -1;
    memcpy(buf + LWS_PRE, s->refusal, n);
    return lws_write(s->wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) < (int)n ? -1 : 0;
}

/* hands queued bytes to lws: on h1 while the socket takes them (up to 16
 * chunks), on h2 one frame per writeable callback as lws requires */
static int sse_write_some(struct sse_sub *s)
{
    int rounds = h2_is_stream(s->wsi) ? 1 : 16;
    size_t n, max = h2_write_room(s->wsi, SSE_WRITE_CHUNK), off = 0;

    while (s->out.len - off > 0 && max > 0 && rounds-- > 0) {
        n = s->out.len - off < max ? s->out.len - off : max;
        if (lws_write(s->wsi, (unsigned char *)s->out.p + LWS_PRE + off, n, LWS_WRITE_HTTP)
            < (int)n)
            return -1;
        off += n;
        if (lws_send_pipe_choked(s->wsi))
            break;
    }
    sse_consumed(s, off);
    return 0;
}

/*
 * The kernel's send buffer is bounded like ours: with autotuning a socket
 * whose client does not read can take megabytes (measured: ~2.6 MB on
 * loopback) before send() stops, so a stalled client would pin that much
 * kernel memory and only be noticed as stalled after it.
 */
static void sse_bound_socket(struct sse_sub *s)
{
    size_t want = s->h->b->cfg.client_buffer_bytes;
    int v = want > 1048576 ? 1048576 : (int)want;

    if (setsockopt(lws_get_socket_fd(s->wsi), SOL_SOCKET, SO_SNDBUF, &v, sizeof v) < 0)
        LOG(LOG_WARN, "sse", "msg=\"cannot bound the send buffer\" errno=%d", errno);
}

/*
 * libev loop, h1: the client's socket is readable.  An SSE client sends
 * nothing after its request, so this is its close (or bytes to discard:
 * there is no next request on a connection whose response never ends).
 */
static void sse_peer_readable(void *ud)
{
    struct sse_sub *s = ud;
    char buf[512];
    ssize_t n;

    if (!s->wsi)
        return;
    if (lws_is_ssl(s->wsi)) {                /* read through the TLS session */
        if (tls_peer_closed(s->wsi))
            sse_sub_kill(s, "client_closed");
        return;
    }
    n = recv(lws_get_socket_fd(s->wsi), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return;
    sse_sub_kill(s, "client_closed");        /* frees the watch */
}

int sse_writeable(struct sse_sub *s)
{
    if (s->status == 0)
        return 0;                      /* still deciding */
    if (!s->headers_sent) {
        if (sse_write_headers(s) < 0)
            return -1;
        if (s->status != 200) {
            if (s->refusal && sse_write_refusal(s) < 0)
                return -1;
            if (h2_is_stream(s->wsi))  /* lws closes the stream once END_STREAM is out */
                return s->refusal ? 0 : h2_end_stream(s->wsi);
            return lws_http_transaction_completed(s->wsi) ? -1 : 0;
        }
        /* no idle timeout, header storage freed; h2 also marks the
         * network connection immortal (lws_http_mark_sse logs an error
         * for h1 connections, so it is used only for h2 streams) */
        lws_http_headers_detach(s->wsi);
        lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
        /* lws 4.1 never reads an h1 connection in the middle of a
         * transaction, so a client's close leaves POLLIN set and spins the
         * loop until the connection is closed (libwebsockets issue 2455):
         * on the libev loop sse_peer_readable notices it on the same turn,
         * on lws's poll loop sse_liveness_cb within a second. */
        if (lws_get_network_wsi(s->wsi) != s->wsi) {
            lws_http_mark_sse(s->wsi);
        } else {
            sse_bound_socket(s);
            s->peer = loop_watch_peer(s->h->b, lws_get_socket_fd(s->wsi), sse_peer_readable, s);
            if (!s->peer && errno == ENOMEM)
                return -1;
        }
        lws_callback_on_writable(s->wsi);
        return 0;
    }
    if (s->status != 200)
        return -1;
    if (sse_write_some(s) < 0)
        return -1;
    if (s->out.len > 0) {
        lws_callback_on_writable(s->wsi);
        return 0;
    }
    if (s->phase == PH_ENDING)         /* conversation finished, or shutdown */
        return h2_is_stream(s->wsi) ? h2_end_stream(s->wsi) : -1;
    if (s->replay_paused)
        sse_replay_next(s);
    return 0;
}

void sse_closed(struct sse_sub *s)
{
    struct sse_hub *h = s->h;

    loop_peer_free(s->peer);        /* lws closes the descriptor after this */
    s->peer = NULL;
    if (h->b->metrics.sse_connections > 0)
        h->b->metrics.sse_connections--;
    netstat_stream_closed(s->proto);
    s->wsi = NULL;
    limits_ip_release(h->b->limits, s->ip);
    s->ip = NULL;
    sse_unsubscribe(s);
    if (s->pending == 0)
        sse_sub_free(s);
}

void sse_close_all(struct sse_hub *h)
{
    struct sse_sub *s;

    for (s = h->all; s; s = s->all_next) {
        if (!s->wsi || s->killed)
            continue;
        sse_unsubscribe(s);
        s->phase = PH_ENDING;
        if (!s->headers_sent)
            sse_sub_kill(s, "shutdown");
        else
            lws_callback_on_writable(s->wsi);
    }
}

/* the key is a secret of the page that opened the stream: compared in
 * constant time */
static int sse_key_is(const struct sse_sub *s, const char *key, size_t len)
{
    return s->key && strlen(s->key) == len && CRYPTO_memcmp(s->key, key, len) == 0;
}

int sse_close_key(struct sse_hub *h, const char *key)
{
    struct sse_sub *s;
    size_t len = strlen(key);
    int n = 0;

    for (s = h->all; s; s = s->all_next) {
        if (!s->wsi || s->killed || !sse_key_is(s, key, len))
            continue;
        sse_sub_kill(s, "client_closed_by_key");
        n++;
    }
    return n;
}

/* ---------- the shared reader ---------- */

static void sse_fanout(struct sse_hub *h, PGresult *res, int row)
{
    const char *kind = PQgetvalue(res, row, 1);
    enum sse_kind k;
    struct sse_stream *st;
    struct sse_sub *s, *next;
    long long id;
    const char *type;
    char *msg;
    size_t len;

    if (!strcmp(kind, "workspace"))
        k = SSE_WORKSPACE;
    else if (!strcmp(kind, "conversation"))
        k = SSE_CONVERSATION;
    else
        return;
    st = sse_stream_find(h, k, PQgetvalue(res, row, 2));
    if (!st)
        return;
    id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    type = PQgetvalue(res, row, 3);
    msg = sse_format_event(id, type, PQgetvalue(res, row, 4), &len);
    if (!msg)
        return;
    /* st may be freed when its last subscriber leaves: walk saved next pointers */
    for (s = st->subs; s; s = next) {
        next = s->next;
        if (s->phase == PH_LIVE)
            sse_deliver(s, id, sse_is_terminal(s, type), msg, len, 1);
        else if (s->phase == PH_REPLAY)
            sse_hold(s, id, sse_is_terminal(s, type), msg, len);
    }
    free(msg);
}

static void sse_wait_next(struct sse_hub *h);

/* after a batch: one send per subscriber that got data, the rest (and a
 * subscriber whose buffer already waited for lws) by the writeable callback */
static void sse_flush_dirty(struct sse_hub *h)
{
    struct sse_sub *s;

    h->batching = 0;
    while ((s = h->dirty)) {
        h->dirty = s->dirty_next;
        s->dirty = 0;
        sse_send_now(s);
        /* the writeable callback also resumes a paused replay and ends a
         * finished stream, even when the send above took everything */
        if ((s->out.len > 0 || s->replay_paused || s->phase == PH_ENDING) && s->wsi &&
            s->headers_sent)
            lws_callback_on_writable(s->wsi);
    }
}

static void sse_on_wait(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_hub *h = ud;
    int i, n;

    (void)c;
    h->reading = 0;
    if (!res)
        return;                                    /* reconnect re-reads from last_seen */
    if (!sse_result_ok(res)) {
        LOG(LOG_ERROR, "sse", "msg=\"wait_all failed\" error=\"%s\"",
            log_text(PQresultErrorMessage(res)));
        loop_timer_schedule(h->reread, 1000000);
        return;
    }
    n = PQntuples(res);
    if (n > 0)
        h->b->metrics.store_reads++;
    h->batching = 1;
    for (i = 0; i < n; i++) {
        sse_fanout(h, res, i);
        h->last_seen = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    sse_flush_dirty(h);
    sse_wait_next(h);
}

/* the next long poll: returns at once when events are waiting */
static void sse_wait_next(struct sse_hub *h)
{
    char after[24], batch[16], timeout[16];
    const char *params[3] = { after, batch, timeout };

    if (h->reading || !h->have_position || !pgconn_is_ready(h->live))
        return;
    snprintf(after, sizeof after, "%lld", h->last_seen);
    snprintf(batch, sizeof batch, "%d", SSE_READ_BATCH);
    snprintf(timeout, sizeof timeout, "%d", SSE_WAIT_MS);
    if (pgconn_query_prepared(h->live, SSE_WAIT_STMT, 3, params, NULL, NULL, sse_on_wait, h) == 0)
        h->reading = 1;
}

static void sse_on_position(struct pgconn *c, PGresult *res, void *ud)
{
    struct sse_hub *h = ud;

    (void)c;
    h->reading = 0;
    if (!sse_result_ok(res) || PQntuples(res) != 1) {
        if (res) {
            LOG(LOG_ERROR, "sse", "msg=\"safe_position failed\" error=\"%s\"",
                log_text(PQresultErrorMessage(res)));
            loop_timer_schedule(h->reread, 1000000);
        }
        return;
    }
    h->last_seen = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    h->have_position = 1;
    LOG(LOG_INFO, "sse", "msg=\"reader started\" position=%lld", h->last_seen);
    sse_wait_next(h);
}

static void sse_begin(struct sse_hub *h)
{
    if (h->have_position) {
        sse_wait_next(h);
        return;
    }
    if (h->reading || !pgconn_is_ready(h->live))
        return;
    if (pgconn_query(h->live, SQL_SAFE_POSITION, 0, NULL, sse_on_position, h) == 0)
        h->reading = 1;
}

static void sse_on_prepared(struct pgconn *c, PGresult *res, void *ud)
{
    (void)c;
    (void)ud;
    if (res && PQresultStatus(res) != PGRES_COMMAND_OK)
        LOG(LOG_ERROR, "sse", "msg=\"cannot prepare the live reader (is the extension at 0.2.0?)\" "
            "error=\"%s\"", log_text(PQresultErrorMessage(res)));
}

/* prepared statements live per session: prepare again after every connect
 * (FIFO: the prepare runs before the first wait that uses it) */
static void sse_on_live_connected(struct pgconn *c, void *ud)
{
    struct sse_hub *h = ud;

    /* the long poll itself waits up to SSE_WAIT_MS */
    pgconn_set_statement_timeout(c, h->b->cfg.statement_timeout_ms + SSE_WAIT_MS);
    if (pgconn_prepare(c, SSE_WAIT_STMT, SQL_WAIT_ALL, sse_on_prepared, ud) == 0)
        sse_begin(ud);
}

static void sse_on_pool_connected(struct pgconn *c, void *ud)
{
    struct sse_hub *h = ud;

    pgconn_set_statement_timeout(c, h->b->cfg.statement_timeout_ms);
}

/* the pool connection with the shortest queue among the ready ones (a slow
 * run request or replay delays only the queries behind it) */
struct pgconn *sse_pg_pick(struct sse_hub *h)
{
    struct pgconn *best = h->pool[0];
    int i, q, best_q = -1;

    for (i = 0; i < h->npool; i++) {
        if (!pgconn_is_ready(h->pool[i]))
            continue;
        q = pgconn_queue_length(h->pool[i]);
        if (best_q < 0 || q < best_q) {
            best = h->pool[i];
            best_q = q;
        }
    }
    return best;
}

static void sse_on_live_lost(struct pgconn *c, void *ud)
{
    struct sse_hub *h = ud;

    (void)c;
    h->reading = 0;
}

static void sse_reread_cb(void *ud)
{
    sse_begin(ud);
}

static int64_t sse_beat_period_us(const struct sse_hub *h)
{
    return (int64_t)h->b->cfg.heartbeat_seconds * 1000000;
}

/* one subscriber's heartbeat: a comment line, or the drop of a client that
 * takes nothing */
static void sse_beat_visit(void *owner, void *item)
{
    static const char beat[] = ": keepalive\n\n";
    struct sse_hub *h = owner;
    struct sse_sub *s = item;
    int64_t now = loop_now_us();

    if (!s->wsi || s->status != 200 || s->killed || s->phase == PH_ENDING)
        return;
    /* seen less than most of an interval ago (the list changed under the
     * round): its progress is judged at the next round */
    if (s->beat_at_us && now - s->beat_at_us < sse_beat_period_us(h) * 3 / 4)
        return;
    s->beat_at_us = now;
    /* no byte taken by the client for a whole interval, buffer half
     * full; or data waiting and none taken for --idle-heartbeats intervals */
    s->idle_beats = s->written == s->written_mark && s->out.len > 0 ? s->idle_beats + 1 : 0;
    if (s->written == s->written_mark && s->out.len >= h->b->cfg.client_buffer_bytes / 2) {
        sse_drop(s, "stalled_client");
        return;
    }
    if (s->idle_beats >= h->b->cfg.idle_heartbeats) {
        sse_drop(s, "idle_client");
        return;
    }
    s->written_mark = s->written;
    if (s->out.len == 0)                  /* data still queued keeps proxies busy anyway */
        sse_append(s, beat, sizeof beat - 1, 1);
}

static void *sse_sweep_first(void *owner)
{
    return ((struct sse_hub *)owner)->all;
}

static void *sse_sweep_next(void *owner, void *item)
{
    (void)owner;
    return ((struct sse_sub *)item)->all_next;
}

static size_t sse_sweep_count(void *owner)
{
    return ((struct sse_hub *)owner)->nall;
}

static const struct sweep_ops sse_beat_ops = {
    sse_sweep_first, sse_sweep_next, sse_sweep_count, sse_beat_visit
};

static void sse_heartbeat_cb(void *ud)
{
    struct sse_hub *h = ud;

    loop_timer_schedule(h->heartbeat, sweep_step(&h->beat, loop_now_us(), sse_beat_period_us(h)));
}

/*
 * Closed clients: lws does not read an SSE connection (see sse_writeable).
 * On lws's poll loop, once a second each stream's socket is peeked for end
 * of file (a sweep: a slice per tick, see sweep.h), which is cheap (one
 * non-blocking recv each) and frees a closed
 * client's resources within a second instead of at the next failed
 * heartbeat write; the loop spins meanwhile.  On the libev loop a watch of
 * our own on each socket (sse_peer_readable) sees the close at once.
 */
#define SSE_LIVENESS_US 1000000

static int sse_peer_closed(struct lws *wsi)
{
    char c;
    ssize_t n;

    if (lws_get_network_wsi(wsi) != wsi)
        return 0;                   /* h2: lws reads the connection, RST_STREAM closes */
    if (lws_is_ssl(wsi))
        return tls_peer_closed(wsi);
    n = recv(lws_get_socket_fd(wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void sse_liveness_visit(void *owner, void *item)
{
    struct sse_sub *s = item;

    (void)owner;
    if (s->wsi && s->headers_sent && !s->killed && sse_peer_closed(s->wsi))
        sse_sub_kill(s, "client_closed");
}

static const struct sweep_ops sse_liveness_ops = {
    sse_sweep_first, sse_sweep_next, sse_sweep_count, sse_liveness_visit
};

static void sse_liveness_cb(void *ud)
{
    struct sse_hub *h = ud;

    loop_timer_schedule(h->liveness, sweep_step(&h->live_sweep, loop_now_us(), SSE_LIVENESS_US));
}

struct sse_hub *sse_hub_new(struct bridge *b)
{
    static const struct pgconn_callbacks cbs = { sse_on_pool_connected, NULL, NULL };
    char name[16];
    int i;
    static const struct pgconn_callbacks live_cbs = { sse_on_live_connected, NULL, sse_on_live_lost };
    struct sse_hub *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    h->b = b;
    h->heartbeat = loop_timer_new(b, sse_heartbeat_cb, h);
    h->reread = loop_timer_new(b, sse_reread_cb, h);
    if (!b->evloop)                 /* the libev loop watches each socket instead */
        h->liveness = loop_timer_new(b, sse_liveness_cb, h);
    if (!h->heartbeat || !h->reread || (!b->evloop && !h->liveness))
        goto err;
    h->npool = b->cfg.pg_pool_size < SSE_POOL_MAX ? b->cfg.pg_pool_size : SSE_POOL_MAX;
    for (i = 0; i < h->npool; i++) {
        snprintf(name, sizeof name, "sse-%d", i);
        if (!(h->pool[i] = pgconn_new(b, b->cfg.database_url, name, &cbs, h)))
            goto err;
    }
    h->pg = h->pool[0];
    h->live = pgconn_new(b, b->cfg.database_url, "sse-live", &live_cbs, h);
    if (!h->live)
        goto err;
    b->pg = h->pg;
    sweep_init(&h->beat, &sse_beat_ops, h, loop_now_us() + sse_beat_period_us(h));
    loop_timer_schedule(h->heartbeat, sse_beat_period_us(h));
    sweep_init(&h->live_sweep, &sse_liveness_ops, h, loop_now_us() + SSE_LIVENESS_US);
    if (h->liveness)
        loop_timer_schedule(h->liveness, SSE_LIVENESS_US);
    return h;
err:
    sse_hub_free(h);
    return NULL;
}

void sse_hub_free(struct sse_hub *h)
{
    struct sse_sub *s;
    int i;

    if (!h)
        return;
    loop_timer_free(h->heartbeat);
    loop_timer_free(h->reread);
    loop_timer_free(h->liveness);
    pgconn_free(h->live);
    if (h->b->pg == h->pg)
        h->b->pg = NULL;
    for (i = 0; i < h->npool; i++)
        pgconn_free(h->pool[i]);    /* fails pending queries: subs drop their refs */
    h->pg = NULL;
    while ((s = h->all)) {
        if (s->wsi)
            lws_set_opaque_user_data(s->wsi, NULL);
        s->wsi = NULL;
        s->pending = 0;
        sse_sub_free(s);
    }
    free(h);
}

/* ready for subscribers: a pool connection and the live reader up, and the
 * live reader placed */
int sse_pg_ready(const struct sse_hub *h)
{
    int i, any = 0;

    for (i = 0; h && i < h->npool && !any; i++)
        any = pgconn_is_ready(h->pool[i]);
    return any && pgconn_is_ready(h->live) && h->have_position;
}
