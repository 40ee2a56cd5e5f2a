/* common/sock.c - the one factory for rt's ZeroMQ sockets. */
#include "sock.h"

#include <string.h>

#include "log.h"
#include "wire.h"

/* A ROUTER's dead connections (peer host gone, network cut) are closed by the kernel:
 * TCP keepalive probes after 1 s idle, every 1 s, 5 unanswered; data unacknowledged for
 * 6 s (TCP_USER_TIMEOUT). Not by ZMTP heartbeats: libzmq 4.3.4 aborts the process
 * ("!_io_error", stream_engine_base.cpp:331) when a heartbeat falls due on a connection
 * whose input it had stopped (the socket's queue full, or its pipe gone) and whose peer
 * then closed it; the heartbeat timer writes to the closed connection. */
#define S_KEEPALIVE_IDLE_S 1
#define S_KEEPALIVE_INTVL_S 1
#define S_KEEPALIVE_CNT 5
#define S_USER_TIMEOUT_MS 6000

int rt_sock_check_plaintext(const char *const *eps, size_t n, bool insecure, const char *prog,
                            const char *refusal, const char *warning, bool *used)
{
    *used = false;
    for (size_t i = 0; i < n; i++) {
        if (!eps[i] || rt_sock_endpoint_local(eps[i]))
            continue;
        if (!insecure) {
            fprintf(stderr, "%s: %s %s\n", prog, eps[i], refusal);
            return RT_EINVAL;
        }
        rt_warn("INSECURE: %s %s (--insecure)", eps[i], warning);
        *used = true;
    }
    return RT_OK;
}

bool rt_sock_endpoint_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6;
    const char *semi = strchr(host, ';'); /* tcp://source;destination: the destination */
    if (semi)
        host = semi + 1;
    return strncmp(host, "127.", 4) == 0 || strncmp(host, "[::1]:", 6) == 0 ||
           strncmp(host, "localhost:", 10) == 0;
}

zsock_t *rt_sock_new(const rt_sock_opts_t *o)
{
    zsock_t *sock = zsock_new(o->type);
    if (!sock) {
        rt_error("cannot create the %s socket: %s", o->what, zmq_strerror(zmq_errno()));
        return NULL;
    }
    void *s = zsock_resolve(sock);
    int64_t max_in = o->max_in > 0        ? o->max_in
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
        zsock_set_router_handover(sock, o->cert ? 0 : 1);
        zsock_set_tcp_keepalive(sock, 1);
        zsock_set_tcp_keepalive_idle(sock, S_KEEPALIVE_IDLE_S);
        zsock_set_tcp_keepalive_intvl(sock, S_KEEPALIVE_INTVL_S);
        zsock_set_tcp_keepalive_cnt(sock, S_KEEPALIVE_CNT);
        zsock_set_tcp_maxrt(sock, S_USER_TIMEOUT_MS);
    }
    if (o->cert) {
        zcert_apply(o->cert, sock);
        if (o->bind) {
            zsock_set_curve_server(sock, 1);
            zsock_set_zap_domain(sock, "rt");
        } else {
            zsock_set_curve_serverkey(sock, o->server_key);
        }
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
