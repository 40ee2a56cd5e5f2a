/* tests/tools/rt_rawpeer.c - a raw ZeroMQ DEALER that sends arbitrary frames to a
 * publisher's ROUTER and prints what comes back (for hostile-input tests).
 *
 * Usage: rt_rawpeer [--id ID] [--cert SECRET --server-key CERT] ENDPOINT HEXFRAME...
 * ("-" sends an empty frame; "2:AA:BB" sends one message of two frames AA and BB; --id
 * sets the routing id, default "rawpeer"; --cert and --server-key speak CURVE;
 * --flood N,SECONDS sends the one HEXFRAME N times without reading any reply, then
 * stays, still not reading, for SECONDS: a peer that asks and never reads; it prints when
 * the publisher ends its connection, and how many it ended). Prints one
 * line per reply: its type and, for ERROR, its text; "no reply" after 2 s. Exits 0 when every frame
 * got a reply.
 *
 * Usage: rt_rawpeer --subscribe BYTES SECONDS ENDPOINT   speaks ZMTP 3.0 itself as a
 * SUB to a PUB endpoint, sends one subscription frame of BYTES bytes, and reconnects
 * and sends it again whenever the publisher drops it, for SECONDS; prints how many
 * sessions it had and how many the publisher dropped (it reconnects after 100 ms, as
 * libzmq does). (libzmq's own SUB keeps topics
 * in a recursive trie that overflows its stack on such a frame, hence raw ZMTP.) */
#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "curve.h"
#include "sock.h"
#include "wire.h"

static size_t s_unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    for (; hex[0] && hex[1] && n < cap; hex += 2) {
        unsigned int b;
        if (sscanf(hex, "%2x", &b) != 1)
            break;
        out[n++] = (unsigned char)b;
    }
    return n;
}

/* Writes all of buf to fd; false on error. */
static bool s_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* One ZMTP 3.0 session as a SUB with the NULL mechanism (RFC 23): greeting, READY,
 * then one subscription frame (0x01 + topic) of bytes + 1 bytes. Returns once the
 * publisher closed the connection or deadline_ms passed; true when it was closed. */
static bool s_zmtp_subscribe(const char *host, int port, const char *topic, size_t bytes,
                             int64_t deadline_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        zclock_sleep(100);
        return false;
    }
    unsigned char greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    static const char ready[] = "\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB";
    unsigned char cmd[2] = {0x04, (unsigned char)(sizeof ready - 1)};
    unsigned char hdr[10] = {0x02};
    rt_put_be64(hdr + 1, bytes + 1);
    hdr[9] = 1;
    bool ok = s_write_all(fd, greeting, sizeof greeting) && s_write_all(fd, cmd, sizeof cmd) &&
              s_write_all(fd, ready, sizeof ready - 1) && s_write_all(fd, hdr, sizeof hdr) &&
              s_write_all(fd, topic, bytes);
    bool closed = !ok;
    while (!closed && zclock_mono() < deadline_ms) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            char buf[4096];
            closed = read(fd, buf, sizeof buf) <= 0;
        }
    }
    close(fd);
    return closed;
}

/* --subscribe BYTES SECONDS ENDPOINT (tcp://IPv4:PORT) */
static int s_subscribe(char **argv)
{
    size_t bytes = strtoul(argv[0], NULL, 10);
    int seconds = atoi(argv[1]);
    char host[64];
    int port;
    if (sscanf(argv[2], "tcp://%63[0-9.]:%d", host, &port) != 2) {
        fprintf(stderr, "rt_rawpeer: --subscribe wants tcp://IPv4:PORT, not %s\n", argv[2]);
        return 2;
    }
    char *topic = malloc(bytes ? bytes : 1);
    if (!topic)
        return 2;
    memset(topic, 'x', bytes);
    int64_t end = zclock_mono() + (int64_t)seconds * 1000;
    long sessions = 0, dropped = 0;
    while (zclock_mono() < end) {
        sessions++;
        if (s_zmtp_subscribe(host, port, topic, bytes, end))
            dropped++;
        zclock_sleep(100); /* libzmq's own reconnect interval */
    }
    free(topic);
    printf("sessions %ld, dropped by the publisher %ld\n", sessions, dropped);
    return 0;
}

/* A TCP socket of this process whose connection to port is established, -1 if none:
 * libzmq's connection to the publisher. */
static int s_connection_to(int port)
{
    DIR *dir = opendir("/proc/self/fd");
    int found = -1;
    for (struct dirent *e; dir && found < 0 && (e = readdir(dir));) {
        int fd = atoi(e->d_name);
        struct sockaddr_in a;
        socklen_t alen = sizeof a;
        struct tcp_info ti;
        socklen_t tlen = sizeof ti;
        if (e->d_name[0] != '.' && getpeername(fd, (struct sockaddr *)&a, &alen) == 0 &&
            a.sin_family == AF_INET && ntohs(a.sin_port) == port &&
            getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 &&
            ti.tcpi_state == TCP_ESTABLISHED)
            found = fd;
    }
    if (dir)
        closedir(dir);
    return found;
}

/* True once the kernel says the connection of TCP socket fd was ended by the other side
 * (closed or reset), which libzmq does not see while it does not read. */
static bool s_tcp_ended(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
           ti.tcpi_state != TCP_ESTABLISHED;
}

/* --flood: sends frame count times without reading, then waits seconds, still not
 * reading, and watches its connection to the publisher (port) as the kernel sees it.
 * Prints when the publisher first ended it, and how many connections it ended (libzmq
 * connects again when it notices). */
static void s_flood(zsock_t *d, int port, const void *frame, size_t len, int count, int seconds)
{
    void *sock = zsock_resolve(d);
    int sent = 0;
    for (int i = 0; i < count; i++)
        sent += zmq_send(sock, frame, len, 0) >= 0;
    printf("sent %d of %d, not reading for %d s\n", sent, count, seconds);
    fflush(stdout);
    int64_t start = zclock_mono(), end = start + (int64_t)seconds * 1000;
    int fd = -1, ended = 0;
    while (zclock_mono() < end) {
        if (fd < 0) {
            fd = s_connection_to(port);
        } else if (s_tcp_ended(fd)) {
            fd = -1;
            if (++ended == 1) {
                printf("disconnected by the publisher %lld ms after the flood\n",
                       (long long)(zclock_mono() - start));
                fflush(stdout);
            }
        }
        zclock_sleep(20);
    }
    printf("the publisher ended %d connections\n", ended);
}

int main(int argc, char **argv)
{
    zsys_handler_set(NULL);
    if (argc == 5 && strcmp(argv[1], "--subscribe") == 0)
        return s_subscribe(argv + 2);
    if (argc < 3) {
        fprintf(stderr, "usage: rt_rawpeer ENDPOINT HEXFRAME...\n");
        return 2;
    }
    rt_sock_opts_t o = {.type = ZMQ_DEALER, .what = "DEALER", .routing_id = "rawpeer"};
    char key[RT_CURVE_KEY_LEN];
    zcert_t *cert = NULL;
    int flood = 0, flood_s = 0;
    int a = 1;
    for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        if (strcmp(argv[a], "--id") == 0) {
            o.routing_id = argv[a + 1];
        } else if (strcmp(argv[a], "--cert") == 0) {
            if (!(cert = rt_curve_load_secret(argv[a + 1])))
                return 2;
            o.cert = cert;
        } else if (strcmp(argv[a], "--flood") == 0) {
            if (sscanf(argv[a + 1], "%d,%d", &flood, &flood_s) != 2 || flood <= 0)
                return 2;
        } else if (strcmp(argv[a], "--server-key") == 0) {
            if (rt_curve_load_public(argv[a + 1], key) != RT_OK)
                return 2;
            o.server_key = key;
        } else {
            fprintf(stderr, "rt_rawpeer: unknown option %s\n", argv[a]);
            return 2;
        }
    }
    if (a >= argc)
        return 2;
    o.endpoint = argv[a];
    argv += a - 1;
    argc -= a - 1;
    zsock_t *d = rt_sock_new(&o);
    if (!d)
        return 2;
    if (flood) {
        static unsigned char fb[4096];
        size_t n = argc > 2 ? s_unhex(argv[2], fb, sizeof fb) : 0;
        const char *colon = strrchr(o.endpoint, ':');
        s_flood(d, colon ? atoi(colon + 1) : 0, fb, n, flood, flood_s);
        zsock_destroy(&d);
        zcert_destroy(&cert);
        return 0;
    }
    void *sock = zsock_resolve(d);
    static unsigned char buf[1 << 20];
    int missing = 0;
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "2:", 2) == 0) {
            char *copy = strdup(argv[i] + 2);
            char *second = strchr(copy, ':');
            if (second)
                *second++ = '\0';
            size_t n = s_unhex(copy, buf, sizeof buf);
            zmq_send(sock, buf, n, ZMQ_SNDMORE);
            n = s_unhex(second ? second : "", buf, sizeof buf);
            zmq_send(sock, buf, n, 0);
            free(copy);
        } else {
            size_t n = strcmp(argv[i], "-") == 0 ? 0 : s_unhex(argv[i], buf, sizeof buf);
            zmq_send(sock, buf, n, 0);
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 2000) <= 0) {
            printf("no reply\n");
            missing++;
            continue;
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, 0);
        rt_msg_t msg;
        int type = rt_msg_peek_type(zmq_msg_data(&m), zmq_msg_size(&m));
        if (type == RT_MSG_ERROR && rt_msg_decode(zmq_msg_data(&m), zmq_msg_size(&m), &msg) == 0) {
            printf("ERROR %lld %s\n", (long long)msg.code, msg.text);
            rt_msg_clear(&msg);
        } else {
            printf("reply type %d, %zu bytes\n", type, zmq_msg_size(&m));
        }
        zmq_msg_close(&m);
    }
    zsock_destroy(&d);
    zcert_destroy(&cert);
    return missing ? 1 : 0;
}
