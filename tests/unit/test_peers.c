/* tests/unit/test_peers.c - publisher/peers and publisher/sockfd on real sockets: what
 * counts as waiting for a peer, who is dropped and how (the peer reads end of file),
 * sockets that are never touched, and a ROUTER whose non-reading DEALER is dropped
 * through the socket libzmq names in ZMQ_SRCFD, which tears its queue down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peers.h"
#include "sock.h"
#include "sockfd.h"

#define MIB (1u << 20)

/* A TCP connection on loopback: the listener, the client side and the accepted side. */
typedef struct {
    int listener, client, accepted;
    char endpoint[64]; /* tcp://127.0.0.1:PORT of the listener */
} s_conn_t;

static void s_connect(s_conn_t *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    c->listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->listener >= 0);
    assert_int_equal(bind(c->listener, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(c->listener, 4), 0);
    assert_int_equal(getsockname(c->listener, (struct sockaddr *)&a, &len), 0);
    snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    c->client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c->client, (struct sockaddr *)&a, sizeof a), 0);
    c->accepted = accept(c->listener, NULL, NULL);
    assert_true(c->accepted >= 0);
}

static void s_close(s_conn_t *c)
{
    close(c->client);
    close(c->accepted);
    close(c->listener);
}

/* True when the client side reads end of file within 2 s. */
static bool s_client_sees_eof(const s_conn_t *c)
{
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c->client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b;
    return recv(c->client, &b, 1, 0) == 0;
}

static void test_sockfd(void **state)
{
    (void)state;
    s_conn_t c;
    s_connect(&c);
    rt_sockfd_local_t local = rt_sockfd_local(c.endpoint);
    assert_int_equal(local.family, AF_INET);
    rt_sockfd_local_t ipc = rt_sockfd_local("ipc:///run/rt/router");
    assert_int_equal(ipc.family, AF_UNIX);
    assert_string_equal(ipc.path, "/run/rt/router");
    assert_int_equal(rt_sockfd_local("inproc://x").family, 0);

    ino_t ino;
    char addr[64];
    assert_true(rt_sockfd_accepted(c.accepted, &local, &ino, addr, sizeof addr));
    assert_true(strncmp(addr, "127.0.0.1:", 10) == 0);
    assert_true(rt_sockfd_is(c.accepted, ino));
    /* Never the listener, the other end (another local port), a file or nothing. */
    ino_t other;
    assert_false(rt_sockfd_accepted(c.listener, &local, &other, NULL, 0));
    assert_false(rt_sockfd_accepted(c.client, &local, &other, NULL, 0));
    assert_false(rt_sockfd_accepted(-1, &local, &other, NULL, 0));
    int file = open("/dev/null", O_RDONLY);
    assert_false(rt_sockfd_accepted(file, &local, &other, NULL, 0));
    close(file);

    uint64_t before, after;
    assert_true(rt_sockfd_written(c.accepted, &before));
    char buf[1000] = {0};
    assert_int_equal(send(c.accepted, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    assert_true(rt_sockfd_written(c.accepted, &after));
    assert_int_equal(after - before, sizeof buf);

    /* The number given to another socket once this one is closed is not this socket. */
    int fd = c.accepted;
    close(fd);
    int again = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(again, fd);
    assert_false(rt_sockfd_is(again, ino));
    close(again);
    c.accepted = -1;
    s_close(&c);
}

/* Up to RT_PEERS_REPLIES replies may wait; more drops the peer, which reads end of
 * file; its messages are then ignored for the grace period. */
static void test_cap(void **state)
{
    (void)state;
    s_conn_t c;
    s_connect(&c);
    rt_peers_t *peers = rt_peers_new(c.endpoint, MIB, 2048);
    assert_non_null(peers);
    assert_true(rt_peers_heard(peers, "replica", 7, c.accepted));
    /* Nothing of it was written to the socket: all of it waits. */
    rt_peers_queued(peers, "replica", 7, RT_PEERS_REPLIES * MIB);
    assert_false(rt_peers_replied(peers, "replica", 7, MIB));
    rt_peers_queued(peers, "replica", 7, 1);
    assert_true(rt_peers_replied(peers, "replica", 7, MIB));
    assert_int_equal(rt_peers_dropped(peers), 1);
    assert_true(s_client_sees_eof(&c));
    assert_false(rt_peers_heard(peers, "replica", 7, c.accepted));
    assert_false(rt_peers_full(peers, "replica", 7)); /* once */
    assert_int_equal(rt_peers_dropped(peers), 1);
    rt_peers_destroy(&peers);
    assert_null(peers);
    s_close(&c);
}

/* The cap grows with the largest reply (one record larger than max_reply), and what
 * the kernel took from the socket no longer waits. */
static void test_large_replies_and_written(void **state)
{
    (void)state;
    s_conn_t c;
    s_connect(&c);
    rt_peers_t *peers = rt_peers_new(c.endpoint, MIB, 2048);
    assert_true(rt_peers_heard(peers, "big", 3, c.accepted));
    rt_peers_queued(peers, "big", 3, 3 * 5 * MIB);
    assert_false(rt_peers_replied(peers, "big", 3, 5 * MIB));

    rt_peers_t *other = rt_peers_new(c.endpoint, MIB, 2048);
    assert_true(rt_peers_heard(other, "reads", 5, c.accepted));
    char buf[65536] = {0};
    size_t sent = 0;
    while (sent < 5 * MIB) { /* the client reads as it comes */
        ssize_t n = send(c.accepted, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            sent += (size_t)n;
        while (recv(c.client, buf, sizeof buf, MSG_DONTWAIT) > 0)
            ;
    }
    rt_peers_queued(other, "reads", 5, sent);
    assert_false(rt_peers_replied(other, "reads", 5, sent));
    assert_int_equal(rt_peers_dropped(other), 0);
    rt_peers_destroy(&other);
    rt_peers_destroy(&peers);
    s_close(&c);
}

/* A socket that is not a connection accepted on the endpoint is never shut down, nor a
 * number since given to another socket. */
static void test_never_another_socket(void **state)
{
    (void)state;
    s_conn_t c;
    s_connect(&c);
    rt_peers_t *peers = rt_peers_new(c.endpoint, MIB, 2048);
    assert_true(rt_peers_heard(peers, "client", 6, c.client));
    rt_peers_queued(peers, "client", 6, 100 * MIB);
    assert_false(rt_peers_replied(peers, "client", 6, MIB));
    assert_false(rt_peers_full(peers, "client", 6));

    assert_true(rt_peers_heard(peers, "gone", 4, c.accepted));
    /* Another connection on the same listener, given the same number. */
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(c.listener, (struct sockaddr *)&a, &len), 0);
    int client2 = socket(AF_INET, SOCK_STREAM, 0);
    int fd = c.accepted;
    close(fd);
    assert_int_equal(connect(client2, (struct sockaddr *)&a, sizeof a), 0);
    c.accepted = accept(c.listener, NULL, NULL);
    assert_int_equal(c.accepted, fd);
    assert_false(rt_peers_full(peers, "gone", 4));
    assert_int_equal(rt_peers_dropped(peers), 0);
    assert_int_equal(send(client2, "x", 1, 0), 1);
    char b;
    assert_int_equal(recv(c.accepted, &b, 1, 0), 1);
    rt_peers_destroy(&peers);
    close(client2);
    s_close(&c);
}

/* Sends 64 KiB to id on router without blocking; false when it fails (errno in *err). */
static bool s_send64k(void *router, const char *id, int *err)
{
    static char body[65536];
    if (zmq_send(router, id, strlen(id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(router, body, sizeof body, ZMQ_DONTWAIT) < 0) {
        *err = zmq_errno();
        return false;
    }
    return true;
}

/* The real thing: a DEALER that asks and never reads. The ROUTER learns its socket from
 * ZMQ_SRCFD, queues past the cap, drops it, and libzmq then has no pipe for it any more
 * (its queue freed): sends to it fail as unroutable. */
static void test_router_drops_dealer(void **state)
{
    (void)state;
    rt_sock_opts_t ro = {.type = ZMQ_ROUTER,
                         .endpoint = "tcp://127.0.0.1:*",
                         .bind = true,
                         .what = "ROUTER",
                         .sndhwm = 2048};
    zsock_t *router = rt_sock_new(&ro);
    assert_non_null(router);
    rt_sock_opts_t dopts = {.type = ZMQ_DEALER,
                            .endpoint = zsock_endpoint(router),
                            .what = "DEALER",
                            .routing_id = "slow",
                            .rcvhwm = 8};
    zsock_t *dealer = rt_sock_new(&dopts);
    assert_non_null(dealer);
    zsock_set_reconnect_ivl(dealer, -1); /* stays away once dropped */
    assert_int_equal(zstr_send(dealer, "FETCH"), 0);

    void *r = zsock_resolve(router);
    zsock_set_rcvtimeo(router, 5000);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    assert_true(zmq_msg_recv(&id, r, 0) >= 0);
    assert_true(zmq_msg_recv(&body, r, 0) >= 0);
    int fd = zmq_msg_get(&body, ZMQ_SRCFD);
    assert_true(fd >= 0);
    zmq_msg_close(&id);
    zmq_msg_close(&body);

    rt_peers_t *peers = rt_peers_new(zsock_endpoint(router), MIB, 2048);
    assert_true(rt_peers_heard(peers, "slow", 4, fd));
    int err = 0;
    bool dropped = false;
    for (int i = 0; i < 2048 && !dropped; i++) {
        if (!s_send64k(r, "slow", &err)) {
            assert_int_equal(err, EAGAIN);
            dropped = rt_peers_full(peers, "slow", 4);
            break;
        }
        rt_peers_queued(peers, "slow", 4, 65536);
        if (i % 16 == 15)
            dropped = rt_peers_replied(peers, "slow", 4, MIB);
    }
    assert_true(dropped);
    int64_t deadline = zclock_mono() + 5000;
    bool unroutable = false;
    while (!unroutable && zclock_mono() < deadline) {
        zsock_events(router); /* lets the ROUTER take libzmq's commands */
        unroutable = !s_send64k(r, "slow", &err) && err == EHOSTUNREACH;
        if (!unroutable)
            zclock_sleep(20);
    }
    assert_true(unroutable);
    rt_peers_destroy(&peers);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sockfd),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_large_replies_and_written),
        cmocka_unit_test(test_never_another_socket),
        cmocka_unit_test(test_router_drops_dealer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
