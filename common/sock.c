/* common/sock.c - the one factory for rt's ZeroMQ sockets. */
#include "sock.h"

#include <string.h>

#include "log.h"
#include "wire.h"

zsock_t *rt_sock_new(const rt_sock_opts_t *o)
{
    zsock_t *sock = zsock_new(o->type);
    if (!sock) {
        rt_error("cannot create the %s socket: %s", o->what, zmq_strerror(zmq_errno()));
        return NULL;
    }
    void *s = zsock_resolve(sock);
    int64_t max_in = o->max_in > 0 ? o->max_in
                     : o->type == ZMQ_PUB ? RT_SOCK_PUB_MAX_IN
                                          : (int64_t)RT_WIRE_MAX_FRAME;
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_in, sizeof max_in);
    zsock_set_linger(sock, 0);
    zsock_set_sndtimeo(sock, 0);
    if (o->sndhwm > 0)
        zsock_set_sndhwm(sock, o->sndhwm);
    if (o->rcvhwm > 0)
        zsock_set_rcvhwm(sock, o->rcvhwm);
    if (o->routing_id)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, o->routing_id, strlen(o->routing_id));
    if (o->type == ZMQ_ROUTER) {
        zsock_set_router_mandatory(sock, 1);
        zsock_set_router_handover(sock, 1);
    }
    if (o->type == ZMQ_SUB)
        zsock_set_subscribe(sock, "");
    int rc = o->bind ? zsock_bind(sock, "%s", o->endpoint) : zsock_connect(sock, "%s", o->endpoint);
    if (rc < 0) {
        rt_error("cannot %s the %s socket to %s: %s", o->bind ? "bind" : "connect", o->what,
                 o->endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}
