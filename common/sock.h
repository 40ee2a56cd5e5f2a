/* common/sock.h - the one factory for rt's ZeroMQ sockets: type, endpoint, bind or
 * connect, queue limits, frame size limit and linger, set in one place for every peer. */
#ifndef RT_SOCK_H
#define RT_SOCK_H

#include <czmq.h>

#include "rt.h"

/* Largest frame a PUB socket accepts from a subscriber: rt's subscriptions are empty
 * topics, so a larger one is hostile and its peer is disconnected before it is read. */
#define RT_SOCK_PUB_MAX_IN 256

typedef struct {
    int type;               /* ZMQ_PUB, ZMQ_SUB, ZMQ_ROUTER or ZMQ_DEALER */
    const char *endpoint;   /* "tcp://host:port", ... */
    bool bind;              /* bind (a server side) or connect */
    const char *what;       /* names the socket in errors, e.g. "ROUTER (--listen)" */
    int sndhwm;             /* send high-water mark in messages (0: czmq's default, 1000) */
    int rcvhwm;             /* receive high-water mark in messages (0: czmq's default) */
    int64_t max_in;         /* largest frame accepted (0: RT_WIRE_MAX_FRAME, or
                               RT_SOCK_PUB_MAX_IN for PUB); a peer sending more is dropped */
    const char *routing_id; /* DEALER: the routing id the ROUTER sees (NULL: random) */
} rt_sock_opts_t;

/* Creates the socket, applies the options and binds or connects it. Every socket gets
 * linger 0 and a non-blocking send (sndtimeo 0); a ROUTER also gets ROUTER_MANDATORY
 * (unroutable sends fail rather than vanish) and ROUTER_HANDOVER; a SUB subscribes to
 * everything. Returns NULL on failure, logged with what and the endpoint (malformed
 * endpoint, address in use). The caller zsock_destroy's it. */
zsock_t *rt_sock_new(const rt_sock_opts_t *opts);

#endif
