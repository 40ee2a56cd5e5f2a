/* publisher/sync_job.c - a copy job's thread: one table's rows under its session's
 * snapshot, as COPY_DATA frames within the subscriber's credit.
 *
 * A connection of its own imports the snapshot (BEGIN ISOLATION LEVEL REPEATABLE READ READ
 * ONLY; SET TRANSACTION SNAPSHOT) and runs the table's COPY ... TO STDOUT. The rows, read
 * without blocking (PQgetCopyData async), are gathered into frames of whole rows of up to
 * RT_SYNC_FRAME_BYTES (a larger row goes alone). A frame is sent only while the job has
 * credit, one credit a frame; without credit the job stops reading the source, which then
 * waits on TCP, so nothing piles up here. COPY bytes are forwarded exactly as libpq
 * returns them: in binary format the header comes with the first row and the trailer
 * last. At the end COPY_DONE{rows}; on an error ERROR{RT_EDB, "copy of S.T failed: ..."}
 * to the job that asked. "$TERM" on the pipe ends it at once. */
#include <czmq.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"
#include "pgconn.h"
#include "sync_int.h"

/* A partial frame is sent once the source was silent this long, or once it is this old. */
#define FLUSH_IDLE_MS 20
#define FLUSH_AGE_MS 200

typedef struct {
    rt_sync_job_args_t *args; /* owned */
    zsock_t *pipe;            /* from the session (borrowed) */
    zsock_t *push;            /* the channel back */
    PGconn *conn;
    char what[320];                 /* "copy of schema.table", the start of every error */
    uint64_t credit;                /* frames it may still send */
    bool stop;                      /* "$TERM" came */
    rt_buf_t frame;                 /* whole rows gathered, not sent yet */
    int64_t frame_ms;               /* when its first row came */
    uint64_t frames;                /* sent */
    uint64_t bytes;                 /* of COPY data sent */
    char err[RT_PG_ERR_MAX + 1100]; /* the error, as sent */
} s_job_t;

void rt_sync_job_args_free(rt_sync_job_args_t *a)
{
    if (!a)
        return;
    free(a->what);
    free(a->dsn);
    free(a->snapshot);
    free(a->sql);
    free(a->id);
    free(a->endpoint);
    free(a);
}

/* Sets err to "copy of S.T failed: " and the formatted detail, and logs it. */
static int s_error(s_job_t *self, int code, const char *fmt, ...) RT_PRINTF(3, 4);
static int s_error(s_job_t *self, int code, const char *fmt, ...)
{
    char detail[RT_PG_ERR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(self->err, sizeof self->err, "%s failed: %s", self->what, detail);
    rt_error("%s", self->err);
    return code;
}

/* Reads one command from the pipe: "$TERM", or "CREDIT" | count. */
static void s_on_pipe(s_job_t *self)
{
    zmsg_t *msg = zmsg_recv(self->pipe);
    char *cmd = msg ? zmsg_popstr(msg) : NULL;
    if (!cmd || streq(cmd, "$TERM")) {
        self->stop = true;
    } else if (streq(cmd, "CREDIT")) {
        uint64_t n = rt_sync_pop_u64(msg);
        self->credit =
            n < RT_SYNC_MAX_CREDIT - self->credit ? self->credit + n : RT_SYNC_MAX_CREDIT;
    }
    free(cmd);
    zmsg_destroy(&msg);
}

/* rt_pg_waiter_t: waits for fd while answering the pipe. */
static int s_wait(void *arg, int fd)
{
    s_job_t *self = arg;
    while (!self->stop) {
        zmq_pollitem_t items[2] = {{zsock_resolve(self->pipe), 0, ZMQ_POLLIN, 0},
                                   {NULL, fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, -1) < 0 && zmq_errno() != EINTR)
            return RT_EIO;
        if (items[0].revents & ZMQ_POLLIN)
            s_on_pipe(self);
        if (!self->stop && items[1].revents)
            return 0;
    }
    return RT_EAGAIN;
}

/* Runs sql, whose result must have status want. */
static int s_exec(s_job_t *self, const char *sql, ExecStatusType want)
{
    rt_pg_waiter_t w = {s_wait, self};
    PGresult *res;
    int rc = rt_pg_exec_wait(self->conn, &w, "source", self->what, sql, 0, NULL, &res, self->err,
                             sizeof self->err);
    if (rc != RT_OK)
        return rc;
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st != want)
        return s_error(self, RT_EDB, "the source answered %s instead of %s", PQresStatus(st),
                       PQresStatus(want));
    return RT_OK;
}

/* Sends the rows gathered as one COPY_DATA, spending a credit. */
static int s_send_frame(s_job_t *self)
{
    rt_msg_t m = {.type = RT_MSG_COPY_DATA,
                  .sync_id = self->args->sync_id,
                  .table = self->args->table,
                  .data = self->frame.data,
                  .datalen = self->frame.len};
    int rc = rt_sync_push_msg(self->push, self->args->id, self->args->idlen, &m);
    if (rc == RT_EINVAL)
        return s_error(self, rc, "a row of %zu bytes does not fit in a message (%u bytes at most)",
                       self->frame.len, RT_WIRE_MAX_RECORD);
    if (rc != RT_OK)
        return s_error(self, rc, "the publisher could not pass on %zu bytes", self->frame.len);
    self->credit--;
    self->frames++;
    self->bytes += self->frame.len;
    rt_buf_reset(&self->frame);
    return RT_OK;
}

/* Gathers rows and sends frames while there is credit and rows are at hand. Sets *end at
 * the end of the COPY. */
static int s_gather(s_job_t *self, bool *end)
{
    if (self->frame.len >= RT_SYNC_FRAME_BYTES && self->credit > 0) {
        int rc = s_send_frame(self); /* filled while there was no credit */
        if (rc != RT_OK)
            return rc;
    }
    while (self->credit > 0 && !*end) {
        char *row = NULL;
        int n = PQgetCopyData(self->conn, &row, 1);
        if (n == 0)
            return RT_OK;
        if (n == -1) {
            *end = true;
            return RT_OK;
        }
        if (n < 0) {
            char line[RT_PG_ERR_MAX];
            return s_error(self, RT_EDB, "%s",
                           rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
        }
        int rc = RT_OK;
        if (self->frame.len && self->frame.len + (size_t)n > RT_SYNC_FRAME_BYTES)
            rc = s_send_frame(self); /* whole rows only: this one starts the next frame */
        if (rc == RT_OK) {
            if (!self->frame.len)
                self->frame_ms = rt_mono_ms();
            rt_buf_append(&self->frame, row, (size_t)n);
            if (rt_buf_error(&self->frame) != RT_OK)
                rc = s_error(self, RT_ENOMEM, "out of memory");
        }
        PQfreemem(row);
        if (rc == RT_OK && self->frame.len >= RT_SYNC_FRAME_BYTES && self->credit > 0)
            rc = s_send_frame(self);
        if (rc != RT_OK)
            return rc;
    }
    return RT_OK;
}

/* Streams the COPY's rows until its end. RT_EAGAIN when "$TERM" came. */
static int s_stream(s_job_t *self)
{
    bool end = false;
    while (!self->stop) {
        int rc = s_gather(self, &end);
        if (rc != RT_OK)
            return rc;
        bool partial = self->frame.len > 0 && self->credit > 0;
        if (end && !self->frame.len)
            return RT_OK;
        if (partial && (end || rt_mono_ms() - self->frame_ms >= FLUSH_AGE_MS)) {
            if ((rc = s_send_frame(self)) != RT_OK)
                return rc;
            continue;
        }
        /* The pipe always; the source only with credit: without, TCP holds it back. */
        zmq_pollitem_t items[2] = {{zsock_resolve(self->pipe), 0, ZMQ_POLLIN, 0},
                                   {NULL, PQsocket(self->conn), ZMQ_POLLIN, 0}};
        int nitems = self->credit > 0 && !end ? 2 : 1;
        int ready = zmq_poll(items, nitems, partial ? FLUSH_IDLE_MS : -1);
        if (ready < 0) {
            if (zmq_errno() == EINTR)
                continue;
            return s_error(self, RT_EIO, "polling failed: %s", zmq_strerror(zmq_errno()));
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_on_pipe(self);
        if (nitems == 2 && items[1].revents && !PQconsumeInput(self->conn)) {
            char line[RT_PG_ERR_MAX];
            return s_error(self, RT_EDB, "%s",
                           rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
        }
        if (ready == 0 && partial && (rc = s_send_frame(self)) != RT_OK)
            return rc; /* the source was silent: what was gathered goes */
    }
    return RT_EAGAIN;
}

/* Imports the snapshot, copies, and collects the COPY's row count into *rows. */
static int s_copy(s_job_t *self, uint64_t *rows)
{
    rt_pg_opts_t o = {.dsn = self->args->dsn,
                      .what = "the source",
                      .application_name = "rt-publisher copy",
                      .stop = rt_daemon_stop_flag()};
    char err[RT_PG_ERR_MAX + 256];
    int rc = rt_pg_connect(&o, &self->conn, err, sizeof err);
    if (rc != RT_OK) {
        snprintf(self->err, sizeof self->err, "%s failed: %s", self->what, err);
        return rc;
    }
    char *snap = rt_pg_literal(self->conn, self->args->snapshot);
    if (!snap)
        return s_error(self, RT_ENOMEM, "the snapshot's name could not be quoted");
    char sql[256];
    snprintf(sql, sizeof sql,
             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s", snap);
    free(snap);
    if ((rc = s_exec(self, sql, PGRES_COMMAND_OK)) != RT_OK ||
        (rc = s_exec(self, self->args->sql, PGRES_COPY_OUT)) != RT_OK ||
        (rc = s_stream(self)) != RT_OK)
        return rc;
    rt_pg_waiter_t w = {s_wait, self};
    PGresult *res;
    if ((rc = rt_pg_collect(self->conn, &w, "source", self->what, &res, self->err,
                            sizeof self->err)) != RT_OK)
        return rc;
    *rows = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return RT_OK;
}

void rt_sync_job_actor(zsock_t *pipe, void *arg)
{
    s_job_t self = {.args = arg, .pipe = pipe};
    self.credit = self.args->credit;
    snprintf(self.what, sizeof self.what, "copy of %s", self.args->what);
    zsock_signal(pipe, 0);
    if (!(self.push = rt_sync_push_new(self.args->endpoint)))
        goto cleanup;
    uint64_t rows = 0;
    int rc = s_copy(&self, &rows);
    if (rc == RT_OK) {
        rt_msg_t done = {.type = RT_MSG_COPY_DONE,
                         .sync_id = self.args->sync_id,
                         .table = self.args->table,
                         .count = rows};
        if (rt_sync_push_msg(self.push, self.args->id, self.args->idlen, &done) != RT_OK)
            rt_warn("%s: COPY_DONE could not be passed on", self.what);
        rt_debug("%s: %llu rows, %llu bytes in %llu frames", self.what, (unsigned long long)rows,
                 (unsigned long long)self.bytes, (unsigned long long)self.frames);
    } else if (rc != RT_EAGAIN) { /* RT_EAGAIN: asked to stop */
        /* Errors of the source are "source: copy of S.T failed: ..." (pgconn's form). */
        const char *text = strncmp(self.err, "source: ", 8) == 0 ? self.err + 8 : self.err;
        rt_sync_push_error(self.push, self.args->id, self.args->idlen, RT_EDB, text);
    }
cleanup:
    if (self.conn)
        PQfinish(self.conn);
    rt_buf_free(&self.frame);
    zsock_destroy(&self.push);
    rt_sync_job_args_free(self.args);
}
