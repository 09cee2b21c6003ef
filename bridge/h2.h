/*
 * h2.h: what lws 4.1.6 leaves to its caller on an HTTP/2 stream: the size
 * of a DATA write (one frame, within the flow-control window) and ending a
 * stream so the client sees it end (END_STREAM).  On HTTP/1.1 the
 * functions do nothing or report no limit.
 */
#ifndef AEGIS_H2_H
#define AEGIS_H2_H

#include <stddef.h>

struct lws;

/* 1 if wsi is a stream of an HTTP/2 connection */
int h2_is_stream(struct lws *wsi);

/* the most one lws_write of body bytes may carry now: want on HTTP/1.1;
 * on HTTP/2 at most one frame and the stream's and connection's credit
 * (0: the window is shut; lws calls back writeable on WINDOW_UPDATE) */
size_t h2_write_room(struct lws *wsi, size_t want);

/* HTTP/2: sends END_STREAM (an empty final DATA frame) after the headers
 * or the body already written; lws closes the stream once it is out.
 * Returns 0, or -1 if the write failed.  HTTP/1.1: does nothing, 0. */
int h2_end_stream(struct lws *wsi);

#endif
