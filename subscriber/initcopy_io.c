/* subscriber/initcopy_io.c - the I/O of the initial copy, shared by the coordinator
 * (initcopy.c) and its copy jobs (initcopy_job.c): the DEALER to the publisher, control
 * messages sent and received (serving --http while waiting), the replica's sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initcopy_int.h"
#include "log.h"
#include "pgconn.h"
#include "sock.h"
#include "wire.h"

/* ---------------------------------------------------------------------------------
 * Messages */

zsock_t *rt__copy_dealer(const rt_initcopy_opts_t *o, const char *suffix)
{
    char id[128];
    snprintf(id, sizeof id, "%s/%s", o->name, suffix);
    rt_sock_opts_t so = {.type = ZMQ_DEALER,
                         .endpoint = o->publisher,
                         .what = "DEALER (--publisher)",
                         .sndhwm = 1000,
                         .rcvhwm = 1000,
                         .max_in = RT_WIRE_MAX_RECORD,
                         .routing_id = id,
                         .cert = o->cert,
                         .server_key = o->publisher_key};
    return rt_sock_new(&so);
}

int rt__copy_send(zsock_t *sock, const rt_msg_t *m)
{
    void *frame;
    size_t len;
    int err = rt_msg_encode(m, &frame, &len);
    if (err != RT_OK)
        return err;
    zframe_t *f = zframe_new(frame, len);
    free(frame);
    if (!f)
        return RT_ENOMEM;
    return zframe_send(&f, sock, ZFRAME_DONTWAIT) == 0 ? RT_OK : RT_EIO;
}

/* Appends the poll item of the caller's HTTP server, if any, as items[*n]. Returns its
 * index, or -1 without a server. */
int rt__copy_http_poll_item(zmq_pollitem_t *items, int *n, rt_http_t *http)
{
    if (!http)
        return -1;
    items[*n] = (zmq_pollitem_t){NULL, rt_http_fd(http), ZMQ_POLLIN, 0};
    return (*n)++;
}

/* Answers the HTTP requests waiting when items[i] (from rt__copy_http_poll_item) is readable. */
void rt__copy_http_serve(rt_http_t *http, const zmq_pollitem_t *items, int i)
{
    if (i >= 0 && (items[i].revents & ZMQ_POLLIN))
        (void)rt_http_serve(http);
}

/* Waits up to timeout_ms for a message on sock (and, if pipe is not NULL, for a command
 * on it: then RT_EAGAIN), serving http (the coordinator's; NULL: none) meanwhile. RT_OK
 * with *m decoded, RT_EAGAIN on time out or stop, RT_EPROTO for a frame that is not a
 * control message (logged). */
int rt__copy_recv(zsock_t *sock, zsock_t *pipe, rt_http_t *http, int timeout_ms,
                  volatile sig_atomic_t *stop, rt_msg_t *m)
{
    memset(m, 0, sizeof *m);
    zmq_pollitem_t items[3] = {{zsock_resolve(sock), 0, ZMQ_POLLIN, 0},
                               {pipe ? zsock_resolve(pipe) : NULL, 0, ZMQ_POLLIN, 0}};
    int n = pipe ? 2 : 1;
    int ihttp = rt__copy_http_poll_item(items, &n, http);
    int64_t end = rt_mono_ms() + timeout_ms;
    for (;;) {
        if (stop && *stop)
            return RT_EAGAIN;
        int64_t left = end - rt_mono_ms();
        if (left < 0)
            return RT_EAGAIN;
        int rc = zmq_poll(items, n, left < 200 ? left : 200);
        if (rc < 0 && zmq_errno() != EINTR)
            return RT_EIO;
        rt__copy_http_serve(http, items, ihttp);
        if (pipe && (items[1].revents & ZMQ_POLLIN))
            return RT_EAGAIN;
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            break;
    }
    zframe_t *f = zframe_recv(sock);
    if (!f)
        return RT_EIO;
    int err = rt_msg_decode(zframe_data(f), zframe_size(f), m);
    zframe_destroy(&f);
    if (err != RT_OK)
        rt_warn("initial copy: the publisher sent a frame that is not a control message");
    return err;
}

/* ---------------------------------------------------------------------------------
 * The replica */

int rt__copy_replica_connect(const rt_initcopy_opts_t *o, const char *app, PGconn **conn)
{
    rt_pg_opts_t po = {.dsn = o->target,
                       .what = "the replica",
                       .application_name = app,
                       .timeout_ms = 10000,
                       .stop = o->stop};
    int err = rt_pg_connect(&po, conn, NULL, 0);
    if (err != RT_OK)
        return err;
    char msg[512];
    if (rt_pg_standby(*conn, "the replica", "--target", msg, sizeof msg)) {
        rt_error("%s", msg);
        PQfinish(*conn);
        *conn = NULL;
        return RT_EDB;
    }
    static const char *const setup[] = {"SET session_replication_role = replica",
                                        "SET client_min_messages = warning"};
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        PGresult *res =
            rt_pg_exec(*conn, "replica", "setting up the copy session", setup[i], 0, NULL, NULL, 0);
        if (!res) {
            PQfinish(*conn);
            *conn = NULL;
            return RT_EDB;
        }
        PQclear(res);
    }
    return RT_OK;
}

/* Runs a statement that returns nothing the caller needs. */
int rt__copy_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                  const char *const *params, char *err, size_t err_size)
{
    return rt_pg_run(conn, "replica", what, sql, nparams, params, err, err_size);
}
