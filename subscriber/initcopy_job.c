/* subscriber/initcopy_job.c - a copy job of the initial copy (initcopy.c): its own DEALER
 * "NAME/copy<k>" and replica connection; one table (or part) per replica transaction,
 * COPY FROM STDIN fed with the publisher's COPY_DATA frames, credit granted one frame at a
 * time, then the table marked copied, committed together. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initcopy_int.h"
#include "initcopy_schema.h"
#include "log.h"
#include "pgconn.h"

/* Frames of credit a job grants when it starts a table (each ~256 KiB at most). */
#define S_CREDIT 8
/* A job that hears nothing of its table for this long gives up (the session is lost). */
#define S_JOB_SILENCE_MS 60000

typedef struct {
    zsock_t *pipe;
    zsock_t *dealer;
    PGconn *conn;
    PGconn *post_conn; /* for building keys and indexes: pg_dump's scripts set the session */
    const rt__copy_plan_t *plan;
    char id[32];
    uint64_t unreported; /* bytes loaded since the last BYTES */
    int64_t last_report_ms;
} s_job_t;

static void s_job_fail(s_job_t *j, size_t index, int code, const char *text)
{
    zstr_sendm(j->pipe, "FAIL");
    zstr_sendfm(j->pipe, "%zu", index);
    zstr_sendfm(j->pipe, "%d", code);
    zstr_send(j->pipe, text);
}

static int s_grant(s_job_t *j, size_t index, uint64_t count, uint64_t flags)
{
    rt_msg_t m = {.type = RT_MSG_COPY,
                  .name = (char *)j->plan->opts->name,
                  .sync_id = j->plan->sync_id,
                  .table = index,
                  .count = count,
                  .flags = flags};
    return rt__copy_send(j->dealer, &m);
}

/* Feeds the open COPY from the publisher's frames until COPY_DONE. RT_OK with *rows
 * the publisher's count; else an error with text set. */
static int s_job_feed(s_job_t *j, size_t index, uint64_t *rows, char *text, size_t size)
{
    const rt__copy_table_t *t = &j->plan->tables[index];
    uint64_t flags = t->binary ? RT_COPY_BINARY : 0;
    if (s_grant(j, index, S_CREDIT, flags) != RT_OK) {
        snprintf(text, size, "cannot ask the publisher for %s", t->qname);
        return RT_EIO;
    }
    int64_t last_rx = rt_mono_ms();
    for (;;) {
        rt_msg_t m;
        int err = rt__copy_recv(j->dealer, j->pipe, NULL, 250, j->plan->opts->stop, &m);
        if (err == RT_EAGAIN) {
            if (zsock_events(j->pipe) & ZMQ_POLLIN ||
                (j->plan->opts->stop && *j->plan->opts->stop)) {
                snprintf(text, size, "stopped");
                return RT_EAGAIN;
            }
            if (rt_mono_ms() - last_rx > S_JOB_SILENCE_MS) {
                snprintf(text, size, "the publisher sent nothing of %s for %d s", t->qname,
                         S_JOB_SILENCE_MS / 1000);
                return RT_EIO;
            }
            continue;
        }
        if (err != RT_OK) {
            snprintf(text, size, "a malformed frame while copying %s", t->qname);
            return err;
        }
        last_rx = rt_mono_ms();
        if (m.type == RT_MSG_ERROR) {
            snprintf(text, size, "the publisher: %s", m.text ? m.text : "");
            /* A session the publisher no longer has (it restarted) needs a new snapshot:
             * the copy starts again, as for any other failure of the publisher. */
            err = m.code == RT_ENOTFOUND ? RT_EIO : RT_EDB;
            rt_msg_clear(&m);
            return err;
        }
        if ((m.type != RT_MSG_COPY_DATA && m.type != RT_MSG_COPY_DONE) ||
            m.sync_id != j->plan->sync_id || m.table != index) {
            rt_msg_clear(&m);
            continue; /* a late frame of something else */
        }
        if (m.type == RT_MSG_COPY_DONE) {
            *rows = m.count;
            rt_msg_clear(&m);
            return RT_OK;
        }
        int put = m.datalen ? PQputCopyData(j->conn, m.data, (int)m.datalen) : 1;
        j->unreported += m.datalen;
        rt_msg_clear(&m);
        if (put != 1) {
            char line[RT_PG_ERR_MAX];
            snprintf(text, size, "loading %s: %s", t->qname,
                     rt_pg_error_line(PQerrorMessage(j->conn), line, sizeof line));
            return PQstatus(j->conn) == CONNECTION_OK ? RT_EDB : RT_EIO;
        }
        if (s_grant(j, index, 1, flags) != RT_OK) {
            snprintf(text, size, "cannot ask the publisher for more of %s", t->qname);
            return RT_EIO;
        }
        int64_t now = rt_mono_ms();
        if (now - j->last_report_ms >= 1000) {
            zstr_sendm(j->pipe, "BYTES");
            zstr_sendf(j->pipe, "%" PRIu64, j->unreported);
            j->unreported = 0;
            j->last_report_ms = now;
        }
    }
}

/* Copies one table in one replica transaction. */
static void s_job_table(s_job_t *j, size_t index)
{
    const rt__copy_table_t *t = &j->plan->tables[index];
    char text[RT_PG_ERR_MAX + 200] = "";
    uint64_t rows = 0;
    int err = rt__copy_exec(j->conn, "beginning a table copy", "BEGIN", 0, NULL, text, sizeof text);
    if (err == RT_OK) {
        PGresult *res = PQexec(j->conn, t->copy_sql);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
            char line[RT_PG_ERR_MAX];
            snprintf(text, sizeof text, "COPY into %s: %s", t->qname,
                     rt_pg_error_line(PQerrorMessage(j->conn), line, sizeof line));
            err = PQstatus(j->conn) == CONNECTION_OK ? RT_EDB : RT_EIO;
        }
        PQclear(res);
    }
    if (err == RT_OK) {
        err = s_job_feed(j, index, &rows, text, sizeof text);
        int end = PQputCopyEnd(j->conn, err == RT_OK ? NULL : "the initial copy stopped");
        PGresult *res = PQgetResult(j->conn);
        if (err == RT_OK && (end != 1 || PQresultStatus(res) != PGRES_COMMAND_OK)) {
            char line[RT_PG_ERR_MAX];
            snprintf(text, sizeof text, "COPY into %s: %s", t->qname,
                     rt_pg_error_line(PQerrorMessage(j->conn), line, sizeof line));
            err = PQstatus(j->conn) == CONNECTION_OK ? RT_EDB : RT_EIO;
        } else if (err == RT_OK && strtoull(PQcmdTuples(res), NULL, 10) != rows) {
            snprintf(text, sizeof text, "%s: the publisher sent %" PRIu64 " rows, COPY loaded %s",
                     t->qname, rows, PQcmdTuples(res));
            err = RT_EPROTO;
        }
        PQclear(res);
        while ((res = PQgetResult(j->conn)))
            PQclear(res);
    }
    /* A table in parts is marked copied by the coordinator once every part is. */
    if (err == RT_OK && j->plan->tables[t->group].nparts == 1)
        err = rt__copy_mark_ready(j->conn, j->plan, t->src, rows, text, sizeof text);
    if (err == RT_OK)
        err =
            rt__copy_exec(j->conn, "committing a table copy", "COMMIT", 0, NULL, text, sizeof text);
    if (err != RT_OK) {
        if (PQstatus(j->conn) == CONNECTION_OK)
            PQclear(PQexec(j->conn, "ROLLBACK"));
        s_job_fail(j, index, err, text);
        return;
    }
    zstr_sendm(j->pipe, "DONE");
    zstr_sendfm(j->pipe, "%zu", index);
    zstr_sendfm(j->pipe, "%" PRIu64, rows);
    zstr_sendf(j->pipe, "%" PRIu64, j->unreported);
    j->unreported = 0;
}

/* Builds a copied table's keys and indexes in a transaction of their own, overlapping
 * the other jobs' copies. One that fails is left for the copy's end, which says why. */
static void s_job_post(s_job_t *j, size_t index)
{
    const rt__copy_table_t *t = &j->plan->tables[index];
    char text[RT_PG_ERR_MAX + 200] = "";
    size_t built = 0;
    int64_t start = rt_mono_ms();
    int err = j->post_conn ? RT_OK
                           : rt__copy_replica_connect(j->plan->opts, "rt-subscriber index build",
                                                      &j->post_conn);
    if (err == RT_OK)
        err = rt__copy_exec(j->post_conn, "building a table's keys and indexes", "BEGIN", 0, NULL,
                            text, sizeof text);
    if (err == RT_OK)
        err = rt_initcopy_post_table(j->post_conn, j->plan->source, t->src->schema, t->src->table,
                                     &built);
    if (err == RT_OK)
        err = rt__copy_exec(j->post_conn, "building a table's keys and indexes", "COMMIT", 0, NULL,
                            text, sizeof text);
    if (err != RT_OK && j->post_conn && PQstatus(j->post_conn) == CONNECTION_OK)
        PQclear(PQexec(j->post_conn, "ROLLBACK"));
    if (err == RT_EIO || err == RT_ENOMEM) {
        snprintf(text, sizeof text, "building the keys and indexes of %s: %s", t->qname,
                 rt_strerror(err));
        s_job_fail(j, index, err, text);
        return;
    }
    zstr_sendm(j->pipe, "BUILT");
    zstr_sendfm(j->pipe, "%zu", index);
    zstr_sendfm(j->pipe, "%zu", err == RT_OK ? built : 0);
    zstr_sendf(j->pipe, "%" PRId64, rt_mono_ms() - start);
}

void rt__copy_job_actor(zsock_t *pipe, void *arg)
{
    rt__copy_job_args_t *a = arg;
    s_job_t j = {.pipe = pipe, .plan = a->plan, .last_report_ms = rt_mono_ms()};
    snprintf(j.id, sizeof j.id, "copy%d", a->k);
    free(a);
    zsock_signal(pipe, 0); /* zactor_new waits for it */
    int err = rt__copy_replica_connect(j.plan->opts, "rt-subscriber copy", &j.conn);
    if (err == RT_OK && !(j.dealer = rt__copy_dealer(j.plan->opts, j.id)))
        err = RT_EINVAL;
    if (err != RT_OK) {
        s_job_fail(&j, SIZE_MAX, err, "cannot set up a copy job (logged above)");
        goto cleanup;
    }
    zstr_send(pipe, "READY");
    for (;;) {
        char *cmd = NULL, *arg1 = NULL;
        if (zstr_recvx(pipe, &cmd, &arg1, NULL) < 0)
            break;
        bool term = strcmp(cmd, "$TERM") == 0;
        if (!term && strcmp(cmd, "TABLE") == 0 && arg1)
            s_job_table(&j, (size_t)strtoull(arg1, NULL, 10));
        else if (!term && strcmp(cmd, "POST") == 0 && arg1)
            s_job_post(&j, (size_t)strtoull(arg1, NULL, 10));
        zstr_free(&cmd);
        zstr_free(&arg1);
        if (term)
            break;
    }
cleanup:
    zsock_destroy(&j.dealer);
    if (j.conn)
        PQfinish(j.conn);
    if (j.post_conn)
        PQfinish(j.post_conn);
    /* Wait for $TERM when set-up failed, as zactor expects. */
    while (err != RT_OK) {
        char *cmd = zstr_recv(pipe);
        bool term = !cmd || strcmp(cmd, "$TERM") == 0;
        zstr_free(&cmd);
        if (term)
            break;
    }
}
