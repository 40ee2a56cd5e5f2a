/* subscriber/client.c - the subscriber's side of the publisher conversation as every
 * client speaks it (client.h). */
#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sock.h"

#define S_RECONNECT_MIN_MS 500
#define S_RECONNECT_MAX_MS 10000
/* Records the DEALER socket queues (above the credit's records). */
#define S_DEALER_RCVHWM 10000
/* Dropped frames are logged at most this often. */
#define S_BAD_LOG_MS 10000

void rt_client_init(rt_client_t *c, const char *publisher, const char *name, const char *pub,
                    zcert_t *cert, const char *publisher_key)
{
    *c = (rt_client_t){.publisher = publisher,
                       .name = name,
                       .pub = pub && *pub ? pub : NULL,
                       .cert = cert,
                       .publisher_key = cert ? publisher_key : NULL,
                       .backoff_ms = S_RECONNECT_MIN_MS,
                       .bad_log_ms = INT64_MIN / 2};
}

int rt_client_send(rt_client_t *c, const rt_msg_t *msg)
{
    void *frame = NULL;
    size_t len = 0;
    if (!c->dealer)
        return RT_EAGAIN;
    int rc = rt_msg_encode(msg, &frame, &len);
    if (rc != RT_OK) {
        rt_error("cannot encode a %s for the publisher: %s", rt_msg_type_name(msg->type),
                 rt_strerror(rc));
        return RT_EPROTO;
    }
    rc = RT_OK;
    if (zmq_send(zsock_resolve(c->dealer), frame, len, ZMQ_DONTWAIT) < 0) {
        rt_debug("%s to the publisher dropped: %s", rt_msg_type_name(msg->type),
                 zmq_strerror(errno));
        rc = RT_EAGAIN;
    }
    free(frame);
    return rc;
}

static void s_ping(rt_client_t *c, int64_t now)
{
    rt_msg_t m = {.type = RT_MSG_PING};
    (void)rt_client_send(c, &m);
    c->last_ping_ms = now;
}

int rt_client_connect(rt_client_t *c, int64_t now)
{
    rt_sock_opts_t o = {.type = ZMQ_DEALER,
                        .endpoint = c->publisher,
                        .what = "DEALER (--publisher)",
                        .rcvhwm = S_DEALER_RCVHWM,
                        .max_in = RT_WIRE_MAX_RECORD,
                        .routing_id = c->name,
                        .cert = c->cert,
                        .server_key = c->publisher_key};
    if (!(c->dealer = rt_sock_new(&o)))
        return RT_EINVAL;
    c->known_head = 0;
    rt_fetch_window_reset(&c->fetch);
    c->last_rx_ms = now;
    s_ping(c, now);
    rt_debug("connecting to the publisher at %s", c->publisher);
    return RT_OK;
}

void rt_client_ping(rt_client_t *c, int64_t now)
{
    if (now - c->last_ping_ms >= RT_CLIENT_PING_MS)
        s_ping(c, now);
}

/* Writes into buf the PUB endpoint to connect to: ep with a wildcard host ('*',
 * 0.0.0.0) replaced by the host of router, the ROUTER endpoint connected to. */
static void s_resolve_pub(const char *router, const char *ep, char *buf, size_t size)
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

int rt_client_subscribe(rt_client_t *c, const char *endpoint)
{
    if (c->sub)
        return RT_OK;
    char ep[512];
    if (c->pub)
        snprintf(ep, sizeof ep, "%s", c->pub);
    else
        s_resolve_pub(c->publisher, endpoint ? endpoint : "", ep, sizeof ep);
    rt_sock_opts_t o = {.type = ZMQ_SUB,
                        .endpoint = ep,
                        .what = "SUB (the publisher's PUB)",
                        .rcvhwm = RT_CLIENT_SUB_RCVHWM,
                        .max_in = RT_WIRE_MAX_RECORD,
                        .cert = c->cert,
                        .server_key = c->publisher_key};
    if (!(c->sub = rt_sock_new(&o)))
        return RT_EINVAL;
    rt_debug("subscribed to %s", ep);
    return RT_OK;
}

void rt_client_welcome(rt_client_t *c, const rt_msg_t *welcome)
{
    c->run_id = welcome->run_id;
    c->durable_head = welcome->head_seq;
    rt_client_note_head(c, welcome->head_seq);
    c->backoff_ms = S_RECONNECT_MIN_MS;
}

void rt_client_note_head(rt_client_t *c, uint64_t head)
{
    if (head > c->known_head)
        c->known_head = head;
}

bool rt_client_note_run(rt_client_t *c, uint64_t run_id, uint64_t head)
{
    if (run_id && c->run_id && run_id != c->run_id)
        return false;
    if (run_id == c->run_id && head > c->durable_head)
        c->durable_head = head;
    rt_client_note_head(c, head);
    return true;
}

bool rt_client_fetched(rt_client_t *c, const rt_msg_t *fetched, int64_t now)
{
    if (!rt_client_note_run(c, fetched->run_id, fetched->head_seq))
        return false;
    (void)rt_fetch_window_answered(&c->fetch, fetched->seq, fetched->last_seq, fetched->head_seq,
                                   !c->run_id, now);
    return true;
}

void rt_client_fetched_record(rt_client_t *c, uint64_t seq, size_t len, int64_t now)
{
    rt_fetch_window_record(&c->fetch, len, now);
    if (seq > c->durable_head)
        c->durable_head = seq;
    rt_client_note_head(c, seq);
}

bool rt_client_catching_up(const rt_client_t *c, uint64_t next)
{
    return c->known_head >= next &&
           (rt_fetch_window_busy(&c->fetch) || c->known_head - next >= RT_FETCH_COUNT);
}

int rt_client_sub_state(const rt_client_t *c, bool paused, uint64_t next)
{
    if (paused)
        return RT_SUB_PAUSED;
    return rt_client_catching_up(c, next) ? RT_SUB_CATCHING_UP : RT_SUB_STREAMING;
}

bool rt_client_ack_due(const rt_client_t *c, int64_t now)
{
    return (c->ack_due && now - c->last_ack_ms >= RT_CLIENT_ACK_MIN_MS) ||
           now - c->last_ack_ms >= RT_CLIENT_ACK_MAX_MS;
}

int rt_client_ack(rt_client_t *c, const rt_msg_t *ack, int64_t now)
{
    c->last_ack_ms = now;
    c->ack_due = false;
    return rt_client_send(c, ack);
}

void rt_client_lost(rt_client_t *c, const char *why, int64_t now)
{
    rt_warn("%s; reconnecting to %s in %.1f s", why, c->publisher, c->backoff_ms / 1000.0);
    zsock_destroy(&c->dealer);
    zsock_destroy(&c->sub);
    rt_fetch_window_forget(&c->fetch);
    c->run_id = c->durable_head = c->known_head = 0;
    c->reconnect_at_ms = now + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > S_RECONNECT_MAX_MS ? S_RECONNECT_MAX_MS : c->backoff_ms * 2;
}

void rt_client_restart(rt_client_t *c, int64_t now)
{
    c->backoff_ms = S_RECONNECT_MIN_MS;
    c->reconnect_at_ms = now;
}

bool rt_client_reconnect_due(const rt_client_t *c, int64_t now)
{
    return now >= c->reconnect_at_ms;
}

#define S_XSTR(x) #x
#define S_STR(x) S_XSTR(x)

const char *rt_client_silence(const rt_client_t *c, int64_t now)
{
    if (!c->dealer)
        return NULL;
    if (now - c->last_rx_ms > RT_CLIENT_SILENCE_MS)
        return "no message from the publisher for " S_STR(RT_CLIENT_SILENCE_MS) " ms";
    if (c->fetch.unanswered >= RT_FETCH_UNANSWERED_MAX)
        return "FETCHes to the publisher went unanswered " S_STR(
            RT_FETCH_UNANSWERED_MAX) " times in a row (" S_STR(RT_FETCH_RETRY_MS) " ms each)";
    return NULL;
}

int rt_client_fetch(rt_client_t *c, uint64_t next, uint64_t head, bool with_run, int64_t now)
{
    if (rt_fetch_window_overdue(&c->fetch, now))
        rt_warn("FETCH from seq %" PRIu64 " unanswered for %d s; asking again",
                c->fetch.out[0].from, RT_FETCH_RETRY_MS / 1000);
    uint64_t from;
    uint32_t count;
    int sent = 0;
    while (rt_fetch_window_next(&c->fetch, next, head, now, &from, &count)) {
        rt_msg_t m = {
            .type = RT_MSG_FETCH, .seq = from, .count = count, .run_id = with_run ? c->run_id : 0};
        (void)rt_client_send(c, &m);
        rt_debug("FETCH %" PRIu32 " from seq %" PRIu64 " (head %" PRIu64 ")", count, from, head);
        sent++;
    }
    return sent;
}

void rt_client_bad(rt_client_t *c, const char *why, int64_t now)
{
    c->bad_frames++;
    if (now - c->bad_log_ms < S_BAD_LOG_MS)
        return;
    rt_warn("dropped %" PRIu64 " frame(s) from the publisher (last: %s); %" PRIu64 " in total",
            c->bad_frames - c->bad_logged, why, c->bad_frames);
    c->bad_logged = c->bad_frames;
    c->bad_log_ms = now;
}

static void s_bad(rt_client_t *c, const rt_client_hooks_t *h, void *ctx, const char *why,
                  int64_t now)
{
    rt_client_bad(c, why, now);
    if (h->bad)
        h->bad(ctx, why);
}

/* What was received: one frame, a live record (LIVE then REC), or a message of several
 * frames that is not one, dropped whole (its parts arrive together). */
typedef enum { S_RECV_NONE, S_RECV_ONE, S_RECV_LIVE, S_RECV_BAD } s_recv_t;

/* Receives one message without waiting; a live record only when live_ok (the SUB).
 * *msg and *rec are initialised whatever it returns: the caller closes both. */
static s_recv_t s_take(void *handle, bool live_ok, zmq_msg_t *msg, zmq_msg_t *rec, rt_msg_t *live)
{
    zmq_msg_init(msg);
    zmq_msg_init(rec);
    if (zmq_msg_recv(msg, handle, ZMQ_DONTWAIT) < 0)
        return S_RECV_NONE;
    if (!zmq_msg_more(msg))
        return S_RECV_ONE;
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
    return ok ? S_RECV_LIVE : S_RECV_BAD;
}

bool rt_client_recv(rt_client_t *c, void *handle, const rt_client_hooks_t *hooks, void *ctx,
                    int64_t now)
{
    bool from_dealer = c->dealer && handle == zsock_resolve(c->dealer);
    if (!from_dealer && !(c->sub && handle == zsock_resolve(c->sub)))
        return false;
    zmq_msg_t msg, rec;
    rt_msg_t live;
    s_recv_t got = s_take(handle, !from_dealer, &msg, &rec, &live);
    if (got != S_RECV_NONE)
        c->last_rx_ms = now;
    if (got == S_RECV_LIVE) {
        hooks->record(ctx, &rec, false, &live, now);
        rt_msg_clear(&live);
    } else if (got == S_RECV_BAD) {
        s_bad(c, hooks, ctx, "a message of several frames that is not a live record", now);
    } else if (got == S_RECV_ONE) {
        const void *data = zmq_msg_data(&msg);
        size_t len = zmq_msg_size(&msg);
        int type = rt_msg_peek_type(data, len);
        rt_msg_t m;
        bool block =
            type == RT_MSG_STREAM || type == RT_MSG_STREAM_ABORT || type == RT_MSG_STREAM_COMMIT;
        if (type == RT_MSG_REC) {
            hooks->record(ctx, &msg, from_dealer, NULL, now);
        } else if (block && !from_dealer) {
            if (!hooks->stream) {
                /* not followed by this client */
            } else if (rt_msg_decode(data, len, &m) != RT_OK) {
                s_bad(c, hooks, ctx, "a control message that does not decode", now);
            } else {
                hooks->stream(ctx, &m, now);
                rt_msg_clear(&m);
            }
        } else if (type != RT_MSG_UNKNOWN && type != RT_MSG_HUGZ && !from_dealer) {
            s_bad(c, hooks, ctx, "a control message on the PUB socket", now);
        } else if (type == RT_MSG_STATUS_REPLY) {
            m = (rt_msg_t){.type = type, .data = (void *)data, .datalen = len};
            hooks->message(ctx, &m, now);
        } else if (type == RT_MSG_UNKNOWN) {
            s_bad(c, hooks, ctx, "a frame that is not an rt message", now);
        } else if (rt_msg_decode(data, len, &m) != RT_OK) {
            s_bad(c, hooks, ctx, "a control message that does not decode", now);
        } else {
            hooks->message(ctx, &m, now);
            rt_msg_clear(&m);
        }
    }
    /* A record handed on pointed into these messages: released only now. */
    zmq_msg_close(&rec);
    zmq_msg_close(&msg);
    return got != S_RECV_NONE;
}

int rt_client_poll_items(const rt_client_t *c, zmq_pollitem_t *items)
{
    int n = 0;
    if (c->dealer)
        items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(c->dealer), .events = ZMQ_POLLIN};
    if (c->sub)
        items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(c->sub), .events = ZMQ_POLLIN};
    return n;
}
