/* subscriber/link_io.c - what every subscriber of the protocol does the same way with
 * its sockets: taking one message (a single frame, or a live record's LIVE header and
 * REC) and finding the PUB endpoint a WELCOME names. Used by link.c and by the test
 * tools that speak the subscriber's side (tests/tools/rt_simsub.c). */
#include "link.h"

#include <stdio.h>
#include <string.h>

#include "wire.h"

rt_link_recv_t rt_link_recv(void *handle, bool live_ok, zmq_msg_t *msg, zmq_msg_t *rec,
                            rt_msg_t *live)
{
    zmq_msg_init(msg);
    zmq_msg_init(rec);
    if (zmq_msg_recv(msg, handle, ZMQ_DONTWAIT) < 0)
        return RT_LINK_RECV_NONE;
    if (!zmq_msg_more(msg))
        return RT_LINK_RECV_ONE;
    /* A live record is LIVE then REC; any other message of several frames is dropped
     * whole (its parts arrive together). */
    bool decoded = live_ok &&
                   rt_msg_peek_type(zmq_msg_data(msg), zmq_msg_size(msg)) == RT_MSG_LIVE &&
                   rt_msg_decode(zmq_msg_data(msg), zmq_msg_size(msg), live) == RT_OK;
    bool more = zmq_msg_recv(rec, handle, ZMQ_DONTWAIT) >= 0;
    bool ok = decoded && more && !zmq_msg_more(rec) &&
              rt_msg_peek_type(zmq_msg_data(rec), zmq_msg_size(rec)) == RT_MSG_REC;
    if (decoded && !ok)
        rt_msg_clear(live);
    more = more && zmq_msg_more(rec);
    while (more) {
        zmq_msg_close(msg);
        zmq_msg_init(msg);
        more = zmq_msg_recv(msg, handle, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(msg);
    }
    return ok ? RT_LINK_RECV_LIVE : RT_LINK_RECV_BAD;
}

void rt_link_resolve_pub(const char *router, const char *ep, char *buf, size_t size)
{
    const char *sep = strstr(ep, "://");
    snprintf(buf, size, "%s", ep);
    if (!sep)
        return;
    const char *host = sep + 3;
    size_t wild = strncmp(host, "*:", 2) == 0 ? 1 : strncmp(host, "0.0.0.0:", 8) == 0 ? 7 : 0;
    const char *psep = strstr(router, "://");
    const char *phost = psep ? psep + 3 : NULL;
    const char *pcolon = phost ? strrchr(phost, ':') : NULL;
    if (!wild || !pcolon || pcolon == phost)
        return;
    snprintf(buf, size, "%.*s%.*s%s", (int)(host - ep), ep, (int)(pcolon - phost), phost,
             host + wild);
}
