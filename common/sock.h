/* common/sock.h - the one factory for rt's ZeroMQ sockets: type, endpoint, bind or
 * connect, queue limits, frame size limit and linger, set in one place for every peer. */
#ifndef RT_SOCK_H
#define RT_SOCK_H

#include <czmq.h>

#include "rt.h"

/* Largest frame a PUB socket accepts from a subscriber: rt's subscriptions are empty
 * topics, so a larger one is hostile and its peer is disconnected before it is read.
 * The limit also covers the ZMTP handshake, whose CURVE INITIATE command (a vouch and
 * metadata) is a few hundred bytes. */
#define RT_SOCK_PUB_MAX_IN 4096

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
    zcert_t *cert;          /* CURVE: this side's key pair (borrowed), or NULL for none */
    const char *server_key; /* CURVE client (connect): the server's public key, Z85 */
} rt_sock_opts_t;

/* True for an endpoint that stays on this host: tcp:// to 127.0.0.0/8, [::1] or
 * localhost, ipc:// and inproc://. Other endpoints need CURVE (or --insecure). */
bool rt_sock_endpoint_local(const char *endpoint);

/* The check of a program run without CURVE: each of the n endpoints (NULL ones
 * skipped) must stay on this host unless insecure. RT_OK, *used set when one needed
 * insecure (each logged "INSECURE: ENDPOINT WARNING (--insecure)"); RT_EINVAL after
 * printing "PROG: ENDPOINT REFUSAL" to stderr for the first that may not. */
int rt_sock_check_plaintext(const char *const *eps, size_t n, bool insecure, const char *prog,
                            const char *refusal, const char *warning, bool *used) RT_WUR;

/* Creates the socket, applies the options and binds or connects it. Every socket gets
 * linger 0 and a non-blocking send (sndtimeo 0); a ROUTER also gets ROUTER_MANDATORY
 * (unroutable sends fail rather than vanish), TCP keepalive and a TCP user timeout (a
 * dead peer's connection goes within seconds; no ZMTP heartbeats, sock.c says why) and,
 * without CURVE only, ROUTER_HANDOVER (with CURVE a connection
 * cannot take over another's routing id); a SUB subscribes to everything. With cert, a
 * bound socket is a CURVE server in ZAP domain "rt" (start rt_auth_new first) and a
 * connected one a CURVE client of server_key. Returns NULL on failure, logged with what and the
 * endpoint (malformed endpoint, address in use). The caller zsock_destroy's it. */
zsock_t *rt_sock_new(const rt_sock_opts_t *opts);

#endif
