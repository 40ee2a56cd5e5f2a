/* tests/unit/test_client.c - subscriber/client: the protocol core every client of a
 * publisher shares, against a real ROUTER and PUB on loopback: PING on connect, the
 * PUB endpoint a WELCOME names (a wildcard host is the ROUTER's), how each kind of frame
 * is sorted (records, live records, control messages, STATUS_REPLY, what is dropped and
 * counted), the run and heads, and the reconnection back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rt.h"
#include "sock.h"
#include "subscriber/client.h"
#include "unit_sock.h"
#include "wire.h"

/* What the hooks saw. */
typedef struct {
    int records, live_records, fetched_records, messages, bad, blocks;
    int last_type;                /* of the last message */
    uint64_t live_run, live_head; /* of the last live record */
    size_t status_len;            /* the last STATUS_REPLY's frame */
    char why[128];                /* of the last frame dropped */
} s_seen_t;

static void s_record(void *ctx, zmq_msg_t *frame, bool from_dealer, const rt_msg_t *live,
                     int64_t now)
{
    (void)now;
    s_seen_t *seen = ctx;
    assert_int_equal(rt_msg_peek_type(zmq_msg_data(frame), zmq_msg_size(frame)), RT_MSG_REC);
    seen->records++;
    seen->fetched_records += from_dealer;
    if (live) {
        assert_false(from_dealer);
        seen->live_records++;
        seen->live_run = live->run_id;
        seen->live_head = live->head_seq;
    }
}

static void s_message(void *ctx, rt_msg_t *m, int64_t now)
{
    (void)now;
    s_seen_t *seen = ctx;
    seen->messages++;
    seen->last_type = m->type;
    if (m->type == RT_MSG_STATUS_REPLY) {
        rt_status_t st;
        assert_int_equal(rt_status_decode(m->data, m->datalen, &st), RT_OK);
        assert_int_equal(st.head_seq, 7);
        rt_status_clear(&st);
        seen->status_len = m->datalen;
    }
}

static void s_bad(void *ctx, const char *why)
{
    s_seen_t *seen = ctx;
    seen->bad++;
    snprintf(seen->why, sizeof seen->why, "%s", why);
}

static const rt_client_hooks_t s_hooks = {.record = s_record, .message = s_message, .bad = s_bad};

static void s_stream(void *ctx, rt_msg_t *m, int64_t now)
{
    (void)now;
    s_seen_t *seen = ctx;
    seen->blocks++;
    seen->last_type = m->type;
    assert_int_equal(m->xid, 731);
    if (m->type == RT_MSG_STREAM) {
        assert_int_equal(m->datalen, 5);
        assert_memory_equal(m->data, "block", 5);
    }
}

static const rt_client_hooks_t s_hooks_stream = {
    .record = s_record, .message = s_message, .bad = s_bad, .stream = s_stream};

/* Encodes m into a frame (malloc'd, *len bytes). */
static void *s_encode(const rt_msg_t *m, size_t *len)
{
    void *frame = NULL;
    assert_int_equal(rt_msg_encode(m, &frame, len), RT_OK);
    return frame;
}

/* A REC frame of seq (the builder's buffer: valid until the builder's next start). */
static const void *s_rec(rt_record_builder_t *b, uint64_t seq, size_t *len)
{
    const void *data = NULL;
    rt_record_builder_start(b, seq, 7, 100 + seq, 0, NULL);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 101 + seq, &data, len),
                     RT_OK);
    return data;
}

/* The ROUTER's next message from the client: its type (the routing id checked). */
static int s_router_recv(zsock_t *router, const char *name)
{
    zsock_set_rcvtimeo(router, 5000);
    zmsg_t *msg = zmsg_recv(router);
    assert_non_null(msg);
    char *id = zmsg_popstr(msg);
    assert_string_equal(id, name);
    zstr_free(&id);
    zframe_t *body = zmsg_pop(msg);
    assert_non_null(body);
    int type = rt_msg_peek_type(zframe_data(body), zframe_size(body));
    zframe_destroy(&body);
    zmsg_destroy(&msg);
    return type;
}

static void s_router_send(zsock_t *router, const char *name, const void *frame, size_t len)
{
    assert_int_equal(zmq_send(zsock_resolve(router), name, strlen(name), ZMQ_SNDMORE),
                     (int)strlen(name));
    assert_int_equal(zmq_send(zsock_resolve(router), frame, len, 0), (int)len);
}

/* Waits (up to 5 s) until socket has input, then lets the client take one message. */
static void s_take(rt_client_t *c, zsock_t *sock, s_seen_t *seen)
{
    zmq_pollitem_t item = {.socket = zsock_resolve(sock), .events = ZMQ_POLLIN};
    assert_int_equal(zmq_poll(&item, 1, 5000), 1);
    assert_true(rt_client_recv(c, zsock_resolve(sock), &s_hooks, seen, rt_mono_ms()));
}

static void test_conversation(void **state)
{
    (void)state;
    char rep[128], pep[128], wild[160];
    zsock_t *router = s_bound(ZMQ_ROUTER, rep, sizeof rep);
    zsock_t *pub = s_bound(ZMQ_PUB, pep, sizeof pep);
    rt_record_builder_t *b = rt_record_builder_new();
    assert_non_null(b);
    rt_client_t c;
    s_seen_t seen = {0};
    rt_client_init(&c, rep, "replica-1", NULL, NULL, NULL);

    /* Connecting sends PING. */
    int64_t now = rt_mono_ms();
    assert_true(rt_client_reconnect_due(&c, now));
    assert_int_equal(rt_client_connect(&c, now), RT_OK);
    assert_int_equal(s_router_recv(router, "replica-1"), RT_MSG_PING);
    zmq_pollitem_t items[2];
    assert_int_equal(rt_client_poll_items(&c, items), 1);

    /* WELCOME names the PUB with a wildcard host: the client connects to the ROUTER's. */
    snprintf(wild, sizeof wild, "tcp://*:%s", strrchr(pep, ':') + 1);
    rt_msg_t w = {.type = RT_MSG_WELCOME,
                  .source = "src",
                  .endpoint = wild,
                  .seq = 0,
                  .first_seq = 1,
                  .head_seq = 5,
                  .run_id = 77};
    size_t len;
    void *frame = s_encode(&w, &len);
    s_router_send(router, "replica-1", frame, len);
    free(frame);
    s_take(&c, c.dealer, &seen);
    assert_int_equal(seen.last_type, RT_MSG_WELCOME);
    assert_int_equal(rt_client_subscribe(&c, wild), RT_OK);
    rt_client_welcome(&c, &w);
    assert_int_equal(c.run_id, 77);
    assert_int_equal(c.durable_head, 5);
    assert_int_equal(c.known_head, 5);
    assert_int_equal(rt_client_poll_items(&c, items), 2);

    /* The PUB reaches the SUB (retried until the subscription has arrived). */
    rt_msg_t h = {.type = RT_MSG_HUGZ, .run_id = 77, .head_seq = 6};
    frame = s_encode(&h, &len);
    zmq_pollitem_t sub_in = {.socket = zsock_resolve(c.sub), .events = ZMQ_POLLIN};
    for (int i = 0; i < 100 && zmq_poll(&sub_in, 1, 50) == 0; i++)
        assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, 0), (int)len);
    free(frame);
    s_take(&c, c.sub, &seen);
    assert_int_equal(seen.last_type, RT_MSG_HUGZ);
    while (zmq_poll(&sub_in, 1, 100) == 1) /* the extra HUGZes */
        assert_true(rt_client_recv(&c, zsock_resolve(c.sub), &s_hooks, &seen, rt_mono_ms()));
    seen = (s_seen_t){0};

    /* A live record: LIVE then REC on the PUB. */
    rt_msg_t live = {.type = RT_MSG_LIVE, .run_id = 77, .head_seq = 6};
    frame = s_encode(&live, &len);
    size_t rec_len;
    const void *rec = s_rec(b, 6, &rec_len);
    assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, ZMQ_SNDMORE), (int)len);
    assert_int_equal(zmq_send(zsock_resolve(pub), rec, rec_len, 0), (int)rec_len);
    s_take(&c, c.sub, &seen);
    assert_int_equal(seen.live_records, 1);
    assert_int_equal(seen.live_run, 77);
    assert_int_equal(seen.live_head, 6);

    /* A control message on the PUB other than HUGZ is dropped and counted. */
    assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, 0), (int)len); /* LIVE alone */
    s_take(&c, c.sub, &seen);
    assert_int_equal(seen.bad, 1);
    assert_string_equal(seen.why, "a control message on the PUB socket");
    /* Several frames that are not a live record: dropped whole. */
    assert_int_equal(zmq_send(zsock_resolve(pub), rec, rec_len, ZMQ_SNDMORE), (int)rec_len);
    assert_int_equal(zmq_send(zsock_resolve(pub), rec, rec_len, 0), (int)rec_len);
    s_take(&c, c.sub, &seen);
    assert_int_equal(seen.bad, 2);
    assert_string_equal(seen.why, "a message of several frames that is not a live record");
    assert_int_equal(seen.records, 1);
    free(frame);
    /* Blocks of a transaction still running: to the stream hook, or dropped uncounted by
     * a client without one. */
    rt_msg_t blk = {.type = RT_MSG_STREAM,
                    .run_id = 77,
                    .xid = 731,
                    .subxid = 731,
                    .seq = 1,
                    .data = "block",
                    .datalen = 5};
    frame = s_encode(&blk, &len);
    assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, 0), (int)len);
    s_take(&c, c.sub, &seen);
    assert_int_equal(seen.bad, 2);
    assert_int_equal(seen.blocks, 0);
    assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, 0), (int)len);
    zmq_pollitem_t sub_item = {.socket = zsock_resolve(c.sub), .events = ZMQ_POLLIN};
    assert_int_equal(zmq_poll(&sub_item, 1, 5000), 1);
    assert_true(rt_client_recv(&c, zsock_resolve(c.sub), &s_hooks_stream, &seen, rt_mono_ms()));
    assert_int_equal(seen.blocks, 1);
    assert_int_equal(seen.last_type, RT_MSG_STREAM);
    free(frame);
    rt_msg_t sc = {
        .type = RT_MSG_STREAM_COMMIT, .run_id = 77, .xid = 731, .count = 1, .first_seq = 8};
    frame = s_encode(&sc, &len);
    assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, 0), (int)len);
    assert_int_equal(zmq_poll(&sub_item, 1, 5000), 1);
    assert_true(rt_client_recv(&c, zsock_resolve(c.sub), &s_hooks_stream, &seen, rt_mono_ms()));
    assert_int_equal(seen.blocks, 2);
    assert_int_equal(seen.last_type, RT_MSG_STREAM_COMMIT);
    assert_int_equal(seen.bad, 2);
    free(frame);

    /* On the DEALER: a fetched REC, a STATUS_REPLY as its frame, bytes that are not rt's,
     * a control message that does not decode. */
    rec = s_rec(b, 7, &rec_len);
    s_router_send(router, "replica-1", rec, rec_len);
    s_take(&c, c.dealer, &seen);
    assert_int_equal(seen.fetched_records, 1);
    rt_status_t st = {.source = "src", .first_seq = 1, .head_seq = 7, .retained_wal_bytes = -1};
    void *sframe = NULL;
    size_t slen = 0;
    assert_int_equal(rt_status_encode(&st, &sframe, &slen), RT_OK);
    s_router_send(router, "replica-1", sframe, slen);
    free(sframe);
    s_take(&c, c.dealer, &seen);
    assert_int_equal(seen.last_type, RT_MSG_STATUS_REPLY);
    assert_int_equal(seen.status_len, slen);
    s_router_send(router, "replica-1", "junk", 4);
    s_take(&c, c.dealer, &seen);
    assert_string_equal(seen.why, "a frame that is not an rt message");
    rt_msg_t f = {.type = RT_MSG_FETCHED, .seq = 7, .last_seq = 7, .head_seq = 7, .run_id = 77};
    frame = s_encode(&f, &len);
    s_router_send(router, "replica-1", frame, len - 1); /* cut short */
    s_take(&c, c.dealer, &seen);
    assert_string_equal(seen.why, "a control message that does not decode");
    assert_int_equal(seen.bad, 4);
    assert_int_equal(c.bad_frames, 4);
    free(frame);

    /* The run: heads move forward only; another run is refused. */
    assert_true(rt_client_note_run(&c, 77, 9));
    assert_int_equal(c.durable_head, 9);
    assert_true(rt_client_note_run(&c, 77, 8));
    assert_int_equal(c.durable_head, 9);
    assert_false(rt_client_note_run(&c, 78, 20));
    assert_int_equal(c.durable_head, 9);

    /* A FETCH asked from seq 10 and answered. */
    assert_int_equal(rt_client_fetch(&c, 10, 12, true, rt_mono_ms()), 1);
    assert_int_equal(s_router_recv(router, "replica-1"), RT_MSG_FETCH);
    assert_true(rt_fetch_window_busy(&c.fetch));
    assert_true(rt_client_catching_up(&c, 9)); /* FETCHes out, the head (9) not passed */
    rt_msg_t done = {
        .type = RT_MSG_FETCHED, .seq = 10, .last_seq = 12, .head_seq = 12, .run_id = 77};
    assert_true(rt_client_fetched(&c, &done, rt_mono_ms()));
    assert_false(rt_fetch_window_busy(&c.fetch));
    assert_int_equal(c.durable_head, 12);
    assert_false(rt_client_catching_up(&c, 10)); /* nothing out, the head close */
    rt_client_fetched_record(&c, 13, 100, rt_mono_ms());
    assert_int_equal(c.durable_head, 13);
    assert_int_equal(c.known_head, 13);

    /* Silence: nothing heard for 5 s, or FETCHes unanswered twice in a row while the PUB
     * still speaks, drop the connection. */
    now = rt_mono_ms();
    c.last_rx_ms = now;
    assert_null(rt_client_silence(&c, now));
    assert_non_null(rt_client_silence(&c, now + RT_CLIENT_SILENCE_MS + 1));
    assert_true(rt_client_fetch(&c, 14, 20, true, now) > 0);
    for (int i = 1; i <= RT_FETCH_UNANSWERED_MAX; i++) {
        now += RT_FETCH_RETRY_MS;
        c.last_rx_ms = now; /* HUGZ keep coming */
        if (i < RT_FETCH_UNANSWERED_MAX)
            assert_null(rt_client_silence(&c, now));
        assert_true(rt_client_fetch(&c, 14, 20, true, now) > 0); /* asked again */
    }
    assert_string_equal(rt_client_silence(&c, now),
                        "FETCHes to the publisher went unanswered 2 times in a row (5000 ms "
                        "each)");

    /* Lost: sockets closed, the run forgotten, the delay doubling up to 10 s; a new run
     * reconnects at once. */
    now = rt_mono_ms();
    rt_client_lost(&c, "test", now);
    assert_null(c.dealer);
    assert_null(c.sub);
    assert_int_equal(c.run_id, 0);
    assert_int_equal(c.known_head, 0);
    assert_null(rt_client_silence(&c, now)); /* no connection, no count */
    assert_int_equal(c.fetch.unanswered, 0);
    assert_false(rt_client_recv(&c, zsock_resolve(router), &s_hooks, &seen, now));
    assert_false(rt_client_reconnect_due(&c, now));
    assert_true(rt_client_reconnect_due(&c, now + 500));
    for (int i = 0; i < 8; i++)
        rt_client_lost(&c, "test", now);
    assert_int_equal(c.backoff_ms, 10000);
    rt_client_restart(&c, now);
    assert_true(rt_client_reconnect_due(&c, now));
    assert_int_equal(c.backoff_ms, 500);
    assert_int_equal(rt_client_send(&c, &h), RT_EAGAIN); /* no connection */

    rt_record_builder_destroy(&b);
    zsock_destroy(&pub);
    zsock_destroy(&router);
}

/* A PUB endpoint given (--pub) is used as it is, whatever WELCOME names. */
static void test_pub_given(void **state)
{
    (void)state;
    char rep[128], pep[128];
    zsock_t *router = s_bound(ZMQ_ROUTER, rep, sizeof rep);
    zsock_t *pub = s_bound(ZMQ_PUB, pep, sizeof pep);
    rt_client_t c;
    rt_client_init(&c, rep, "replica-2", pep, NULL, NULL);
    assert_int_equal(rt_client_connect(&c, rt_mono_ms()), RT_OK);
    assert_int_equal(rt_client_subscribe(&c, "tcp://192.0.2.1:1"), RT_OK);
    rt_msg_t h = {.type = RT_MSG_HUGZ, .run_id = 1, .head_seq = 1};
    size_t len;
    void *frame = s_encode(&h, &len);
    zmq_pollitem_t sub_in = {.socket = zsock_resolve(c.sub), .events = ZMQ_POLLIN};
    int got = 0;
    for (int i = 0; i < 100 && !(got = zmq_poll(&sub_in, 1, 50)); i++)
        assert_int_equal(zmq_send(zsock_resolve(pub), frame, len, 0), (int)len);
    assert_int_equal(got, 1);
    free(frame);
    rt_client_lost(&c, "test", rt_mono_ms());
    zsock_destroy(&pub);
    zsock_destroy(&router);
}

int main(void)
{
    rt_log_init("test_client", RT_LOG_WARN);
    zsys_handler_set(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversation),
        cmocka_unit_test(test_pub_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
