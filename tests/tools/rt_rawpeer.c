/* tests/tools/rt_rawpeer.c - a raw ZeroMQ DEALER that sends arbitrary frames to a
 * publisher's ROUTER and prints what comes back (for hostile-input tests).
 *
 * Usage: rt_rawpeer ENDPOINT HEXFRAME...   ("-" sends an empty frame; "2:AA:BB" sends
 * one message of two frames AA and BB). Prints one line per reply: its type and, for
 * ERROR, its text; "no reply" after 2 s. Exits 0 when every frame got a reply. */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rt_rawpeer ENDPOINT HEXFRAME...\n");
        return 2;
    }
    zsys_handler_set(NULL);
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_identity(d, "rawpeer");
    zsock_set_linger(d, 0);
    if (zsock_connect(d, "%s", argv[1]) < 0) {
        fprintf(stderr, "cannot connect to %s\n", argv[1]);
        return 2;
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
    return missing ? 1 : 0;
}
