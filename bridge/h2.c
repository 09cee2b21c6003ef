/*
 * h2.c: owns the HTTP/2 details lws 4.1.6 does not handle for a server
 * that writes its own bodies (read in lws's lib/roles/h2 at v4.1.6):
 *  - lws_h2_frame_write sends a DATA frame of whatever length it is given:
 *    it neither splits it to the peer's SETTINGS_MAX_FRAME_SIZE (16384
 *    unless raised; more is a FRAME_SIZE_ERROR) nor holds it back past the
 *    flow-control window (it only logs "tx_cr only"; the peer then resets
 *    the stream or the connection).  lws_get_peer_write_allowance is the
 *    smaller of the stream's and the connection's credit.
 *  - closing a stream's wsi sends no RST_STREAM (commented out in
 *    rops_close_kill_connection_h2), and a response without a body is not
 *    ended by lws_http_transaction_completed: the client would wait for
 *    ever.  An empty DATA frame with END_STREAM ends it; it carries no
 *    bytes, so flow control never holds it back.
 */
#include "h2.h"

#include <libwebsockets.h>

#define H2_FRAME_MAX 16384

int h2_is_stream(struct lws *wsi)
{
    return lws_get_network_wsi(wsi) != wsi;
}

size_t h2_write_room(struct lws *wsi, size_t want)
{
    lws_fileofs_t allow;

    if (!h2_is_stream(wsi))
        return want;
    allow = lws_get_peer_write_allowance(wsi);
    if (want > H2_FRAME_MAX)
        want = H2_FRAME_MAX;
    if (allow >= 0 && (size_t)allow < want)
        want = (size_t)allow;
    return want;
}

int h2_end_stream(struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 1];

    if (!h2_is_stream(wsi))
        return 0;
    return lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
}
