/* rtctl/client.c - one request/reply exchange with a publisher's ROUTER. */
#include "client.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

struct rt_client_t {
    zsock_t *dealer;
};

rt_client_t *rt_client_new(const char *endpoint, zcert_t *cert, const char *server_key)
{
    rt_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    char id[64];
    snprintf(id, sizeof id, "rtctl-%ld", (long)getpid());
    rt_sock_opts_t o = {.type = ZMQ_DEALER,
                        .endpoint = endpoint,
                        .what = "DEALER (--publisher)",
                        .routing_id = id,
                        .cert = cert,
                        .server_key = server_key};
    if (!(self->dealer = rt_sock_new(&o))) {
        free(self);
        return NULL;
    }
    return self;
}

void rt_client_destroy(rt_client_t **self_p)
{
    rt_client_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy(&self->dealer);
    free(self);
    *self_p = NULL;
}

int rt_client_call(rt_client_t *self, const rt_msg_t *msg, int timeout_ms, void **reply,
                   size_t *len)
{
    void *frame;
    size_t flen;
    int rc = rt_msg_encode(msg, &frame, &flen);
    if (rc < 0)
        return rc;
    void *sock = zsock_resolve(self->dealer);
    int sent = zmq_send(sock, frame, flen, 0);
    free(frame);
    if (sent < 0)
        return RT_EIO;
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (n < 0)
        return RT_EIO;
    if (n == 0)
        return RT_EAGAIN;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return RT_EIO;
    }
    *len = zmq_msg_size(&m);
    *reply = malloc(*len ? *len : 1);
    if (!*reply) {
        zmq_msg_close(&m);
        return RT_ENOMEM;
    }
    memcpy(*reply, zmq_msg_data(&m), *len);
    zmq_msg_close(&m);
    return RT_OK;
}
