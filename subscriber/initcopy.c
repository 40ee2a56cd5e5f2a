/* subscriber/initcopy.c - the initial copy (schemas/protocol.md, "Initial copy").
 *
 * The coordinator (rt_initcopy_run) talks to the publisher over a DEALER "NAME/sync":
 * PING for the source name, SYNC for a snapshot and its tables, SYNC_KEEP every second,
 * SYNC_END. It checks the replica's tables, empties the ones to copy and hands them,
 * largest first, to job actors. Each job has its own DEALER "NAME/copy<k>" and replica
 * connection, and copies one table per replica transaction: COPY FROM STDIN fed with the
 * publisher's COPY_DATA frames, credit granted one frame at a time, then the table's
 * state set to ready with the snapshot's consistent point, committed together.
 *
 * This file is the coordinator; the jobs are in initcopy_job.c, and the I/O both use (the
 * DEALER, sending and receiving control messages, the replica's sessions) in initcopy_io.c. */
#include "initcopy.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "initcopy_int.h"
#include "initcopy_schema.h"
#include "log.h"
#include "pgconn.h"
#include "wire.h"

/* The coordinator waits this long for a PONG. */
#define S_PING_MS 5000
/* ... and this long for the snapshot (the source may be waiting for old transactions). */
#define S_READY_MS (30 * 60 * 1000)
#define S_KEEP_MS 1000
#define S_PROGRESS_MS 5000
#define S_BACKOFF_MIN_MS 1000
#define S_BACKOFF_MAX_MS 30000

const char *const rt_initcopy_ddl = RT_SCHEMA_DDL_BEGIN
    "IF to_regclass('rt.sync_init') IS NULL THEN "
    "CREATE TABLE rt.sync_init (source text PRIMARY KEY, start_seq bigint NOT NULL, "
    "started_at timestamptz NOT NULL DEFAULT now()); END IF; "
    "IF to_regclass('rt.sync_tables') IS NULL THEN "
    "CREATE TABLE rt.sync_tables (source text, nspname text, relname text, "
    "state \"char\" NOT NULL, lsn pg_lsn, rows bigint, "
    "PRIMARY KEY (source, nspname, relname)); END IF; "
    "IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'rt.sync_tables'::regclass "
    "AND attname = 'replayed') THEN "
    "ALTER TABLE rt.sync_tables ADD COLUMN replayed bigint; END IF; "
    "IF to_regclass('rt.sync_ddl') IS NULL THEN "
    "CREATE TABLE rt.sync_ddl (source text, nspname text, relname text, ord bigint NOT NULL, "
    "post text NOT NULL, PRIMARY KEY (source, nspname, relname)); END IF; END$rt$";

/* ---------------------------------------------------------------------------------
 * Messages */

/* An ERROR from the publisher as a return code: RT_EINVAL for what the operator must
 * fix, RT_EDB (retried) for the rest. */
static int s_publisher_error(const rt_msg_t *m, const char *what)
{
    rt_error("initial copy: the publisher refused %s: %s", what, m->text ? m->text : "");
    return m->code == RT_EINVAL ? RT_EINVAL : RT_EDB;
}

/* ---------------------------------------------------------------------------------
 * The replica */

/* Marks a table copied, in the caller's transaction: ready with the snapshot's point; for
 * a resync of chosen tables also with the snapshot's head seq, after which the apply
 * reads the records again for it (its replay). */
int rt__copy_mark_ready(PGconn *conn, const rt__copy_plan_t *pl, const rt_sync_table_t *t,
                        uint64_t rows, char *err, size_t err_size)
{
    char nrows[24];
    snprintf(nrows, sizeof nrows, "%" PRIu64, rows);
    const char *p[] = {pl->source,   t->schema, t->table,
                       pl->lsn_text, nrows,     pl->seq_text[0] ? pl->seq_text : NULL};
    return rt__copy_exec(
        conn, "marking a table copied",
        "UPDATE rt.sync_tables SET state = 'r', lsn = $4::pg_lsn, rows = $5, "
        "replayed = $6::bigint WHERE source = $1 AND nspname = $2 AND relname = $3",
        6, p, err, err_size);
}

/* ---------------------------------------------------------------------------------
 * The coordinator */

typedef struct {
    const rt_initcopy_opts_t *o;
    zsock_t *dealer;
    PGconn *conn;
    rt_msg_t ready; /* SYNC_READY */
    rt__copy_plan_t plan;
    uint64_t start_seq; /* recorded by an earlier attempt, 0 none */
    bool fresh_resync;  /* a resync that has not emptied any table yet */
    bool post_only;     /* a resync of chosen tables stopped after their rows were in and
                         * before their keys and indexes were built: only those are left */
} s_coord_t;

static void s_coord_clear(s_coord_t *c)
{
    for (size_t i = 0; i < c->plan.ntables; i++) {
        free(c->plan.tables[i].qname);
        free(c->plan.tables[i].copy_sql);
    }
    free(c->plan.tables);
    c->plan.tables = NULL;
    c->plan.ntables = 0;
    rt_msg_clear(&c->ready);
    zsock_destroy(&c->dealer);
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
}

/* PING: the publisher answers with the source's name. */
static int s_learn_source(s_coord_t *c)
{
    rt_msg_t ping = {.type = RT_MSG_PING};
    int err = rt__copy_send(c->dealer, &ping);
    rt_msg_t m;
    int64_t end = rt_mono_ms() + S_PING_MS;
    while (err == RT_OK) {
        int left = (int)(end - rt_mono_ms());
        if ((err = rt__copy_recv(c->dealer, NULL, c->o->http, left > 0 ? left : 0, c->o->stop,
                                 &m)) != RT_OK)
            break;
        if (m.type == RT_MSG_PONG) {
            snprintf(c->plan.source, sizeof c->plan.source, "%s", m.source);
            rt_msg_clear(&m);
            return RT_OK;
        }
        if (m.type == RT_MSG_ERROR)
            err = s_publisher_error(&m, "PING");
        rt_msg_clear(&m);
    }
    if (err == RT_EAGAIN && !(c->o->stop && *c->o->stop)) {
        rt_warn("initial copy: the publisher at %s does not answer", c->o->publisher);
        err = RT_EIO;
    }
    return err;
}

/* Reads the replica's state for the source: whether a copy is needed (no origin yet and
 * --init copy, a resync asked for, or a copy that did not finish) and its start seq. */
static int s_replica_state(s_coord_t *c, bool *needed)
{
    char origin[140];
    snprintf(origin, sizeof origin, "rt_%s", c->plan.source);
    const char *p[] = {origin};
    PGresult *res = rt_pg_exec(c->conn, "replica", "reading the replication origin",
                               "SELECT pg_replication_origin_oid($1) IS NOT NULL", 1, p, NULL, 0);
    if (!res)
        return RT_EDB;
    bool has_origin = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    int err = rt__copy_exec(c->conn, "creating rt.sync_init and rt.sync_tables", rt_initcopy_ddl, 0,
                            NULL, NULL, 0);
    if (err != RT_OK)
        return err;
    const char *ps[] = {c->plan.source};
    if (c->o->tables_only) {
        /* The tables a resync of chosen tables has to copy: held meanwhile. */
        res = rt_pg_exec(c->conn, "replica", "reading rt.sync_tables",
                         "SELECT count(*) FROM rt.sync_tables "
                         "WHERE source = $1 AND state = 'c'",
                         1, ps, NULL, 0);
        if (!res)
            return RT_EDB;
        *needed = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
        PQclear(res);
        if (*needed)
            return RT_OK;
        res = rt_pg_exec(c->conn, "replica", "reading rt.sync_ddl",
                         "SELECT EXISTS (SELECT 1 FROM rt.sync_ddl WHERE source = $1)", 1, ps, NULL,
                         0);
        if (!res)
            return RT_EDB;
        c->post_only = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        return RT_OK;
    }
    res = rt_pg_exec(c->conn, "replica", "reading rt.sync_init",
                     "SELECT start_seq FROM rt.sync_init WHERE source = $1", 1, ps, NULL, 0);
    if (!res)
        return RT_EDB;
    bool unfinished = PQntuples(res) == 1;
    c->start_seq = unfinished ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    c->fresh_resync = c->o->resync && !unfinished;
    *needed = unfinished || c->o->resync || (!has_origin && c->o->init);
    return RT_OK;
}

/* SYNC, then SYNC_READY (the publisher first waits for the source's snapshot). */
static int s_request_snapshot(s_coord_t *c)
{
    rt_msg_t sync = {.type = RT_MSG_SYNC,
                     .name = (char *)c->o->name,
                     .seq = c->start_seq,
                     .count = (uint64_t)c->o->jobs,
                     .flags = c->o->tables_only ? RT_SYNC_TABLES
                              : c->fresh_resync ? RT_SYNC_RESET
                                                : 0};
    int err = rt__copy_send(c->dealer, &sync);
    int64_t start = rt_mono_ms(), said = start;
    while (err == RT_OK) {
        rt_msg_t m;
        err = rt__copy_recv(c->dealer, NULL, c->o->http, 1000, c->o->stop, &m);
        if (err == RT_EAGAIN && !(c->o->stop && *c->o->stop)) {
            int64_t now = rt_mono_ms();
            if (now - start > S_READY_MS) {
                rt_warn("initial copy: no snapshot from the publisher after %d s",
                        S_READY_MS / 1000);
                return RT_EIO;
            }
            if (now - said >= 10000) {
                rt_info("initial copy: waiting for the source's snapshot for %" PRId64
                        " s (it waits for the transactions open on the source to end)",
                        (now - start) / 1000);
                said = now;
            }
            err = RT_OK;
            continue;
        }
        if (err != RT_OK)
            break;
        if (m.type == RT_MSG_SYNC_READY) {
            c->ready = m;
            return RT_OK;
        }
        if (m.type == RT_MSG_ERROR)
            err = s_publisher_error(&m, "the initial copy");
        rt_msg_clear(&m);
    }
    return err;
}

/* --create-tables: the tables missing on the replica, from the source's definitions
 * (SCHEMA, answered by SCHEMA_READY once the publisher ran pg_dump for each). The session
 * is kept alive meanwhile. */
static int s_create_missing(s_coord_t *c)
{
    rt_sync_ddl_t *missing = NULL;
    size_t nmissing = 0;
    int err = rt_initcopy_missing(c->conn, c->ready.tables, c->ready.ntables, &missing, &nmissing);
    if (err != RT_OK || nmissing == 0)
        return err;
    rt_info("initial copy: %zu tables are missing on the replica: asking the publisher for their "
            "definitions",
            nmissing);
    rt_msg_t req = {.type = RT_MSG_SCHEMA,
                    .name = (char *)c->o->name,
                    .sync_id = c->ready.sync_id,
                    .ddl = missing,
                    .nddl = nmissing};
    err = rt__copy_send(c->dealer, &req);
    rt_sync_ddl_free(missing, nmissing);
    rt_msg_t m = {0};
    int64_t start = rt_mono_ms();
    while (err == RT_OK) {
        rt_msg_t keep = {
            .type = RT_MSG_SYNC_KEEP, .name = (char *)c->o->name, .sync_id = c->ready.sync_id};
        (void)rt__copy_send(c->dealer, &keep);
        err = rt__copy_recv(c->dealer, NULL, c->o->http, S_KEEP_MS, c->o->stop, &m);
        if (err == RT_EAGAIN && !(c->o->stop && *c->o->stop)) {
            if (rt_mono_ms() - start > S_READY_MS) {
                rt_warn("initial copy: no table definitions from the publisher after %d s",
                        S_READY_MS / 1000);
                return RT_EIO;
            }
            err = RT_OK;
            continue;
        }
        if (err != RT_OK)
            return err;
        if (m.type == RT_MSG_SCHEMA_READY && m.sync_id == c->ready.sync_id)
            break;
        if (m.type == RT_MSG_ERROR)
            err = s_publisher_error(&m, "the table definitions");
        rt_msg_clear(&m);
    }
    if (err != RT_OK)
        return err;
    /* The definitions set the session's search_path: a connection of their own. */
    PGconn *conn = NULL;
    size_t created = 0;
    if ((err = rt__copy_replica_connect(c->o, "rt-subscriber", &conn)) == RT_OK)
        err = rt_initcopy_create_tables(conn, c->plan.source, m.text, m.ddl, m.nddl, &created);
    if (conn)
        PQfinish(conn);
    if (err == RT_OK)
        rt_info("initial copy: created %zu tables; their keys, indexes and constraints are "
                "built once their rows are copied",
                created);
    else if (err == RT_EINVAL)
        rt_error("initial copy: the missing tables could not be created; nothing was copied");
    rt_msg_clear(&m);
    return err;
}

/* A resync of chosen tables: a table asked for that the source does not publish is
 * forgotten, said once (it would be held for ever). */
static int s_forget_unpublished(s_coord_t *c)
{
    const char *ps[] = {c->plan.source};
    PGresult *res = rt_pg_exec(c->conn, "replica", "reading rt.sync_tables",
                               "SELECT nspname, relname FROM rt.sync_tables "
                               "WHERE source = $1 AND state = 'c'",
                               1, ps, NULL, 0);
    if (!res)
        return RT_EDB;
    int err = RT_OK;
    for (int r = 0; r < PQntuples(res) && err == RT_OK; r++) {
        const char *schema = PQgetvalue(res, r, 0), *table = PQgetvalue(res, r, 1);
        bool published = false;
        for (size_t i = 0; i < c->ready.ntables && !published; i++)
            published = strcmp(c->ready.tables[i].schema, schema) == 0 &&
                        strcmp(c->ready.tables[i].table, table) == 0;
        if (published)
            continue;
        rt_error("resync: source %s does not publish %s.%s: it is not copied", c->plan.source,
                 schema, table);
        const char *p[] = {c->plan.source, schema, table};
        err = rt__copy_exec(c->conn, "forgetting a table",
                            "DELETE FROM rt.sync_tables WHERE source = $1 AND nspname = $2 "
                            "AND relname = $3",
                            3, p, NULL, 0);
    }
    PQclear(res);
    return err;
}

/* Compares a table of the snapshot with the replica's: RT_OK, or RT_EINVAL with the
 * difference in text. Sets t->binary. */
static int s_check_table(s_coord_t *c, rt__copy_table_t *t, char *text, size_t size)
{
    const rt_sync_table_t *s = t->src;
    const char *p[] = {s->schema, s->table};
    PGresult *res = rt_pg_exec(
        c->conn, "replica", "reading a table's columns",
        "SELECT c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), "
        "a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS needs_value, "
        "a.attgenerated <> '' AS generated "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') ORDER BY a.attnum",
        2, p, NULL, 0);
    if (!res)
        return RT_EDB;
    int err = RT_OK;
    int n = PQntuples(res);
    if (n == 0) {
        snprintf(text, size,
                 "table %s.%s is missing on the replica: create it first, or start with "
                 "--create-tables",
                 s->schema, s->table);
        err = RT_EINVAL;
        goto cleanup;
    }
    t->binary = true;
    for (uint32_t i = 0; i < s->ncols && err == RT_OK; i++) {
        int row = -1;
        for (int r = 0; r < n && row < 0; r++)
            if (!PQgetisnull(res, r, 1) && strcmp(PQgetvalue(res, r, 1), s->cols[i].name) == 0)
                row = r;
        if (row < 0) {
            snprintf(text, size, "table %s.%s on the replica has no column %s (%s on the source)",
                     s->schema, s->table, s->cols[i].name, s->cols[i].type);
            err = RT_EINVAL;
        } else if (strcmp(PQgetvalue(res, row, 4), "t") == 0) {
            snprintf(text, size,
                     "column %s of %s.%s is generated on the replica but not on the source",
                     s->cols[i].name, s->schema, s->table);
            err = RT_EINVAL;
        } else if (s->cols[i].typoid >= 16384 ||
                   strcmp(PQgetvalue(res, row, 2), s->cols[i].type) != 0) {
            t->binary = false;
        }
    }
    for (int r = 0; r < n && err == RT_OK; r++) {
        if (PQgetisnull(res, r, 1) || strcmp(PQgetvalue(res, r, 3), "t") != 0)
            continue;
        bool sent = false;
        for (uint32_t i = 0; i < s->ncols && !sent; i++)
            sent = strcmp(PQgetvalue(res, r, 1), s->cols[i].name) == 0;
        if (!sent) {
            snprintf(text, size,
                     "column %s of %s.%s on the replica is NOT NULL without a default, and "
                     "the source does not send it",
                     PQgetvalue(res, r, 1), s->schema, s->table);
            err = RT_EINVAL;
        }
    }
cleanup:
    PQclear(res);
    return err;
}

/* "schema"."table", quoted for conn; malloc'd, NULL on failure. */
static char *s_qualified(PGconn *conn, const rt_sync_table_t *t)
{
    char *schema = rt_pg_ident(conn, t->schema);
    char *table = schema ? rt_pg_ident(conn, t->table) : NULL;
    char *q = table ? malloc(strlen(schema) + strlen(table) + 2) : NULL;
    if (q)
        sprintf(q, "%s.%s", schema, table);
    free(schema);
    free(table);
    return q;
}

/* Builds the plan: each table of the snapshot with its state on the replica, checked,
 * and its COPY statement. RT_EINVAL (logged) when the operator must act. */
static int s_plan(s_coord_t *c)
{
    rt__copy_plan_t *pl = &c->plan;
    pl->opts = c->o;
    pl->sync_id = c->ready.sync_id;
    pl->lsn = c->ready.lsn;
    rt_lsn_format(pl->lsn, pl->lsn_text, sizeof pl->lsn_text);
    if (c->o->tables_only)
        snprintf(pl->seq_text, sizeof pl->seq_text, "%" PRIu64, c->ready.seq);
    if (c->ready.ntables && !(pl->tables = calloc(c->ready.ntables, sizeof *pl->tables)))
        return RT_ENOMEM;
    pl->ntables = c->ready.ntables;

    if (c->start_seq && c->start_seq != c->ready.seq) {
        rt_warn("initial copy: the publisher keeps this subscriber's records from seq %" PRIu64
                ", not %" PRIu64 " as recorded: every table is copied again",
                c->ready.seq + 1, c->start_seq + 1);
        const char *p[] = {pl->source};
        /* Their rows are rt's own: copying (emptied without --truncate). */
        int err = rt__copy_exec(c->conn, "forgetting the copied tables",
                                "UPDATE rt.sync_tables SET state = 'c', lsn = NULL, rows = NULL "
                                "WHERE source = $1",
                                1, p, NULL, 0);
        if (err != RT_OK)
            return err;
    }
    const char *ps[] = {pl->source};
    PGresult *res = rt_pg_exec(c->conn, "replica", "reading rt.sync_tables",
                               "SELECT nspname, relname, state FROM rt.sync_tables "
                               "WHERE source = $1",
                               1, ps, NULL, 0);
    if (!res)
        return RT_EDB;
    int err = RT_OK;
    char text[600];
    size_t bad = 0;
    for (size_t i = 0; i < pl->ntables && err != RT_ENOMEM; i++) {
        rt__copy_table_t *t = &pl->tables[i];
        t->src = &c->ready.tables[i];
        for (int r = 0; r < PQntuples(res); r++)
            if (strcmp(PQgetvalue(res, r, 0), t->src->schema) == 0 &&
                strcmp(PQgetvalue(res, r, 1), t->src->table) == 0) {
                t->ready = PQgetvalue(res, r, 2)[0] == 'r';
                t->copying = PQgetvalue(res, r, 2)[0] == 'c';
                if (c->o->tables_only) {
                    t->copying = !t->ready;
                    t->ready = !t->copying;
                    t->asked = true;
                }
            }
        /* A resync of chosen tables copies those only. */
        if (c->o->tables_only && !t->asked)
            t->ready = true;
        if (c->fresh_resync) {
            /* Every table again; their rows are replaced, whatever they hold. */
            t->ready = false;
            t->copying = true;
        }
        if (!(t->qname = s_qualified(c->conn, t->src))) {
            err = RT_ENOMEM;
            break;
        }
        /* Another part of a table met before: checked there. */
        t->group = i;
        for (size_t j = 0; j < i && t->group == i; j++)
            if (strcmp(pl->tables[j].src->schema, t->src->schema) == 0 &&
                strcmp(pl->tables[j].src->table, t->src->table) == 0)
                t->group = j;
        rt__copy_table_t *lead = &pl->tables[t->group];
        lead->nparts++;
        if (t->group != i) {
            t->binary = lead->binary;
            if (lead->copy_sql && !(t->copy_sql = strdup(lead->copy_sql)))
                err = RT_ENOMEM;
            continue;
        }
        if (t->ready)
            continue;
        int e = s_check_table(c, t, text, sizeof text);
        if (e == RT_EINVAL) {
            if (bad++ < 10)
                rt_error("initial copy: %s", text);
            err = RT_EINVAL;
            continue;
        }
        if (e != RT_OK) {
            err = e;
            break;
        }
        rt_buf_t sql;
        rt_buf_init(&sql);
        rt_buf_printf(&sql, "COPY %s (", t->qname);
        for (uint32_t k = 0; k < t->src->ncols; k++) {
            char *col = rt_pg_ident(c->conn, t->src->cols[k].name);
            if (!col) {
                rt_buf_free(&sql);
                return RT_ENOMEM;
            }
            rt_buf_printf(&sql, "%s%s", k ? ", " : "", col);
            free(col);
        }
        rt_buf_printf(&sql, ") FROM STDIN%s", t->binary ? " (FORMAT binary)" : "");
        if (rt_buf_error(&sql) != RT_OK || !(t->copy_sql = strdup(rt_buf_str(&sql))))
            err = RT_ENOMEM;
        rt_buf_free(&sql);
    }
    PQclear(res);
    if (bad > 10)
        rt_error("initial copy: ... and %zu more tables like these", bad - 10);
    if (err == RT_EINVAL)
        rt_error("initial copy: nothing was copied; fix the replica's tables and start again");
    return err;
}

/* Refuses tables that hold rows (unless --truncate, or rt's own rows from an attempt that
 * did not finish), then in one transaction empties every table to copy, marks them
 * copying and records the start seq. */
static int s_prepare(s_coord_t *c, size_t *ncopy)
{
    rt__copy_plan_t *pl = &c->plan;
    int err = RT_OK;
    size_t full = 0;
    rt_buf_t list;
    rt_buf_init(&list);
    *ncopy = 0;
    for (size_t i = 0; i < pl->ntables && err == RT_OK; i++) {
        rt__copy_table_t *t = &pl->tables[i];
        if (t->ready)
            continue;
        (*ncopy)++;
        if (t->group != i)
            continue; /* a part of a table met before */
        /* A resync of chosen tables deletes their rows instead (no foreign key of another
         * table refuses that: triggers do not fire here). */
        if (c->o->tables_only)
            rt_buf_printf(&list, "DELETE FROM %s%s; ", t->src->relkind == 'p' ? "" : "ONLY ",
                          t->qname);
        else
            rt_buf_printf(&list, "%s%s", rt_buf_str(&list)[0] ? ", " : "", t->qname);
        if (c->o->truncate || t->copying)
            continue;
        char sql[1200];
        snprintf(sql, sizeof sql, "SELECT EXISTS (SELECT 1 FROM %s%s)",
                 t->src->relkind == 'p' ? "" : "ONLY ", t->qname);
        PGresult *res =
            rt_pg_exec(c->conn, "replica", "checking a table is empty", sql, 0, NULL, NULL, 0);
        if (!res) {
            err = RT_EDB;
            break;
        }
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0 && full++ < 10)
            rt_error("initial copy: replica table %s.%s is not empty: rt never merges a copy "
                     "into existing rows; empty it, or start with --truncate",
                     t->src->schema, t->src->table);
        PQclear(res);
    }
    if (err == RT_OK && full) {
        rt_error("initial copy: %zu replica tables are not empty; nothing was copied", full);
        err = RT_EINVAL;
    }
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, c->ready.seq);
    const char *p1[] = {pl->source, seq};
    bool begun = false;
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "beginning the copy", "BEGIN", 0, NULL, NULL, 0);
    begun = err == RT_OK;
    if (err == RT_OK && *ncopy) {
        char *sql = malloc(strlen(rt_buf_str(&list)) + 16);
        if (!sql) {
            err = RT_ENOMEM;
        } else {
            sprintf(sql, "%s%s", c->o->tables_only ? "" : "TRUNCATE ", rt_buf_str(&list));
            char text[RT_PG_ERR_MAX + 100];
            err = rt__copy_exec(c->conn, "emptying the tables to copy", sql, 0, NULL, text,
                                sizeof text);
            if (err == RT_EDB) {
                rt_error("initial copy: the tables to copy cannot be emptied (a table outside "
                         "the publication may refer to one of them); nothing was copied");
                err = RT_EINVAL;
            }
            free(sql);
        }
    }
    /* The copy loads a table without its keys and indexes, and builds them once over the
     * rows, before the table takes changes again (a resync of chosen tables too: its
     * tables' changes are held until then, and the others need none of their indexes). */
    size_t deferred = 0, ntables = 0;
    for (size_t i = 0; i < pl->ntables && err == RT_OK; i++) {
        const rt__copy_table_t *t = &pl->tables[i];
        size_t k = 0;
        if (t->ready || t->group != i)
            continue;
        err = rt_initcopy_defer_indexes(c->conn, pl->source, t->src->schema, t->src->table, &k);
        deferred += k;
        ntables += k > 0;
    }
    if (err == RT_OK && deferred)
        rt_info("initial copy: %zu keys and indexes of %zu tables are built once their rows are "
                "in",
                deferred, ntables);
    for (size_t i = 0; i < pl->ntables && err == RT_OK; i++) {
        const rt__copy_table_t *t = &pl->tables[i];
        if (t->ready || t->group != i)
            continue;
        const char *p[] = {pl->source, t->src->schema, t->src->table};
        err = rt__copy_exec(c->conn, "marking a table copying",
                            "INSERT INTO rt.sync_tables (source, nspname, relname, state) "
                            "VALUES ($1, $2, $3, 'c') ON CONFLICT (source, nspname, relname) "
                            "DO UPDATE SET state = 'c', lsn = NULL, rows = NULL",
                            3, p, NULL, 0);
    }
    if (err == RT_OK && !c->o->tables_only)
        err = rt__copy_exec(c->conn, "recording the copy's start",
                            "INSERT INTO rt.sync_init (source, start_seq) VALUES ($1, $2) "
                            "ON CONFLICT (source) DO UPDATE SET start_seq = $2",
                            2, p1, NULL, 0);
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "committing the copy's start", "COMMIT", 0, NULL, NULL, 0);
    else if (begun && PQstatus(c->conn) == CONNECTION_OK)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    rt_buf_free(&list);
    return err;
}

/* How far the copy is. bytes_total is estimated from the tables' sizes on the source,
 * calibrated by the ratio of COPY bytes to disk bytes of the tables done. */
static rt_copy_progress_t s_progress(const rt__copy_plan_t *pl, const size_t *order, size_t n,
                                     uint64_t rows, uint64_t bytes, int64_t elapsed_ms)
{
    double disk_total = 0, disk_done = 0;
    uint64_t tables = 0, tables_done = 0; /* a table in parts counts once */
    for (size_t i = 0; i < pl->ntables; i++) {
        const rt__copy_table_t *t = &pl->tables[i];
        if (t->group != i)
            continue;
        tables++;
        tables_done += t->ready || t->parts_done == t->nparts;
    }
    for (size_t i = 0; i < n; i++) {
        const rt__copy_table_t *t = &pl->tables[order[i]];
        disk_total += (double)t->src->bytes;
        if (t->done)
            disk_done += (double)t->src->bytes;
    }
    double ratio = disk_done > 0 ? (double)bytes / disk_done : 1.0;
    return (rt_copy_progress_t){.tables_done = tables_done,
                                .tables_total = tables,
                                .rows = rows,
                                .bytes = bytes,
                                .bytes_total = (uint64_t)(disk_total * ratio),
                                .elapsed_ms = (uint64_t)elapsed_ms};
}

static void s_progress_log(const rt_copy_progress_t *p)
{
    double secs = (double)p->elapsed_ms / 1000.0;
    double rate = secs > 0 ? (double)p->bytes / secs : 0;
    char left[48] = "unknown";
    if (rate > 0 && p->bytes_total > p->bytes)
        snprintf(left, sizeof left, "about %.0f s", (double)(p->bytes_total - p->bytes) / rate);
    else if (rate > 0)
        snprintf(left, sizeof left, "finishing");
    rt_info("initial copy: %" PRIu64 " of %" PRIu64 " tables, %" PRIu64 " rows (%.0f rows/s), "
            "%.1f MB (%.1f MB/s) in %.0f s; time left %s",
            p->tables_done, p->tables_total, p->rows, secs > 0 ? (double)p->rows / secs : 0.0,
            (double)p->bytes / 1e6, rate / 1e6, secs, left);
}

/* A table copied in parts: ready once every part is committed (until then a restart
 * copies it whole again). */
static int s_mark_copied(s_coord_t *c, const rt__copy_table_t *lead)
{
    return rt__copy_mark_ready(c->conn, &c->plan, lead->src, lead->rows, NULL, 0);
}

/* Runs the jobs until every table is copied. */
static int s_copy_all(s_coord_t *c, size_t ncopy)
{
    rt__copy_plan_t *pl = &c->plan;
    int njobs = c->o->jobs < (int)ncopy ? c->o->jobs : (int)ncopy;
    zactor_t *jobs[RT_INITCOPY_MAX_JOBS] = {0};
    bool busy[RT_INITCOPY_MAX_JOBS] = {0};
    size_t *order = calloc(ncopy ? ncopy : 1, sizeof *order);
    if (!order)
        return RT_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < pl->ntables; i++)
        if (!pl->tables[i].ready)
            order[n++] = i;
    /* Largest first, so that the longest copy starts at once. */
    for (size_t i = 1; i < n; i++)
        for (size_t k = i;
             k > 0 && pl->tables[order[k]].src->bytes > pl->tables[order[k - 1]].src->bytes; k--) {
            size_t x = order[k];
            order[k] = order[k - 1];
            order[k - 1] = x;
        }

    /* The tables --create-tables made: their keys and indexes are built as soon as their
     * rows are in, by the next free job, while the other jobs copy. */
    size_t *postq = calloc(pl->ntables ? pl->ntables : 1, sizeof *postq);
    size_t npostq = 0, postq_next = 0, post_running = 0, built = 0;
    const char *src[] = {pl->source};
    PGresult *res = postq ? rt_pg_exec(c->conn, "replica", "reading rt.sync_ddl",
                                       "SELECT nspname, relname FROM rt.sync_ddl WHERE source = $1",
                                       1, src, NULL, 0)
                          : NULL;
    if (!res) {
        free(postq);
        free(order);
        return postq ? rt_pg_failure(c->conn) : RT_ENOMEM;
    }
    for (int r = 0; r < PQntuples(res); r++)
        for (size_t i = 0; i < pl->ntables; i++)
            if (pl->tables[i].group == i &&
                strcmp(pl->tables[i].src->schema, PQgetvalue(res, r, 0)) == 0 &&
                strcmp(pl->tables[i].src->table, PQgetvalue(res, r, 1)) == 0)
                pl->tables[i].post = true;
    PQclear(res);

    int err = RT_OK;
    size_t next = 0, done = 0;
    uint64_t bytes = 0, rows = 0;
    int64_t start = rt_mono_ms(), last_keep = 0, last_progress = start;
    for (int k = 0; k < njobs && err == RT_OK; k++) {
        rt__copy_job_args_t *a = malloc(sizeof *a);
        if (!a) {
            err = RT_ENOMEM;
            break;
        }
        *a = (rt__copy_job_args_t){.plan = pl, .k = k + 1};
        if (!(jobs[k] = zactor_new(rt__copy_job_actor, a))) {
            free(a);
            err = RT_ENOMEM;
        }
    }
    while (err == RT_OK && (done < n || postq_next < npostq || post_running)) {
        if (c->o->stop && *c->o->stop) {
            err = RT_EAGAIN;
            break;
        }
        int64_t now = rt_mono_ms();
        rt_copy_progress_t progress = s_progress(pl, order, n, rows, bytes, now - start);
        if (c->o->state)
            c->o->state->progress = progress;
        if (now - last_keep >= S_KEEP_MS) {
            rt_msg_t keep = {.type = RT_MSG_SYNC_KEEP,
                             .name = (char *)c->o->name,
                             .sync_id = pl->sync_id,
                             .progress = progress};
            (void)rt__copy_send(c->dealer, &keep);
            last_keep = now;
        }
        if (now - last_progress >= S_PROGRESS_MS) {
            s_progress_log(&progress);
            last_progress = now;
        }
        zmq_pollitem_t items[RT_INITCOPY_MAX_JOBS + 2];
        for (int k = 0; k < njobs; k++)
            items[k] = (zmq_pollitem_t){zsock_resolve(jobs[k]), 0, ZMQ_POLLIN, 0};
        items[njobs] = (zmq_pollitem_t){zsock_resolve(c->dealer), 0, ZMQ_POLLIN, 0};
        int nitems = njobs + 1;
        int ihttp = rt__copy_http_poll_item(items, &nitems, c->o->http);
        if (zmq_poll(items, nitems, 200) < 0 && zmq_errno() != EINTR) {
            err = RT_EIO;
            break;
        }
        rt__copy_http_serve(c->o->http, items, ihttp);
        if (items[njobs].revents & ZMQ_POLLIN) {
            rt_msg_t m;
            if (rt__copy_recv(c->dealer, NULL, NULL, 0, NULL, &m) == RT_OK &&
                m.type == RT_MSG_ERROR) {
                rt_error("initial copy: the publisher: %s", m.text ? m.text : "");
                err = m.code == RT_EINVAL ? RT_EINVAL : RT_EDB;
            }
            rt_msg_clear(&m);
        }
        for (int k = 0; k < njobs && err == RT_OK; k++) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            zmsg_t *msg = zmsg_recv(jobs[k]);
            if (!msg) {
                err = RT_EIO;
                break;
            }
            char *what = zmsg_popstr(msg);
            if (!what || strcmp(what, "READY") == 0) {
                /* set up: this job is free */
            } else if (strcmp(what, "BYTES") == 0) {
                char *b = zmsg_popstr(msg);
                bytes += b ? strtoull(b, NULL, 10) : 0;
                zstr_free(&b);
            } else if (strcmp(what, "DONE") == 0) {
                char *idx = zmsg_popstr(msg), *r = zmsg_popstr(msg), *b = zmsg_popstr(msg);
                rt__copy_table_t *t = &pl->tables[idx ? strtoull(idx, NULL, 10) % pl->ntables : 0];
                rt__copy_table_t *lead = &pl->tables[t->group];
                uint64_t nrows = r ? strtoull(r, NULL, 10) : 0;
                t->done = true;
                rows += nrows;
                bytes += b ? strtoull(b, NULL, 10) : 0;
                lead->rows += nrows;
                if (++lead->parts_done == lead->nparts) {
                    if (lead->nparts > 1)
                        err = s_mark_copied(c, lead);
                    rt_info("initial copy: %s.%s copied, %" PRIu64 " rows%s", t->src->schema,
                            t->src->table, lead->rows, lead->nparts > 1 ? " (in parts)" : "");
                    if (lead->post)
                        postq[npostq++] = t->group;
                }
                zstr_free(&idx);
                zstr_free(&r);
                zstr_free(&b);
                done++;
                busy[k] = false;
            } else if (strcmp(what, "BUILT") == 0) {
                char *idx = zmsg_popstr(msg), *e = zmsg_popstr(msg), *ms = zmsg_popstr(msg);
                const rt__copy_table_t *t =
                    &pl->tables[idx ? strtoull(idx, NULL, 10) % pl->ntables : 0];
                size_t entries = e ? (size_t)strtoull(e, NULL, 10) : 0;
                if (entries) {
                    built++;
                    rt_info("initial copy: %s.%s: keys and indexes built in %.1f s", t->src->schema,
                            t->src->table, ms ? (double)strtoll(ms, NULL, 10) / 1000.0 : 0.0);
                }
                zstr_free(&idx);
                zstr_free(&e);
                zstr_free(&ms);
                post_running--;
                busy[k] = false;
            } else if (strcmp(what, "FAIL") == 0) {
                char *idx = zmsg_popstr(msg), *code = zmsg_popstr(msg), *text = zmsg_popstr(msg);
                rt_error("initial copy: %s", text ? text : "a copy job failed");
                err = code ? (int)strtol(code, NULL, 10) : RT_EIO;
                if (err == RT_OK || err == RT_EAGAIN)
                    err = RT_EIO;
                zstr_free(&idx);
                zstr_free(&code);
                zstr_free(&text);
            }
            zstr_free(&what);
            zmsg_destroy(&msg);
            if (err == RT_OK && !busy[k] && postq_next < npostq) {
                zstr_sendm(jobs[k], "POST");
                zstr_sendf(jobs[k], "%zu", postq[postq_next++]);
                post_running++;
                busy[k] = true;
            } else if (err == RT_OK && !busy[k] && next < n) {
                zstr_sendm(jobs[k], "TABLE");
                zstr_sendf(jobs[k], "%zu", order[next++]);
                busy[k] = true;
            }
        }
    }
    for (int k = 0; k < njobs; k++)
        zactor_destroy(&jobs[k]);
    size_t whole = 0;
    for (size_t i = 0; i < n; i++)
        whole += pl->tables[order[i]].group == order[i];
    free(order);
    free(postq);
    char also[96] = "";
    if (built)
        snprintf(also, sizeof also, "; the keys and indexes of %zu tables built alongside", built);
    if (err == RT_OK)
        rt_info("initial copy: %zu tables in %zu parts, %" PRIu64 " rows, %.1f MB in %.1f s%s",
                whole, n, rows, (double)bytes / 1e6, (double)(rt_mono_ms() - start) / 1000.0, also);
    return err;
}

/* The origin at the start seq, in the transaction that ends the copy, with what is left of
 * the keys and indexes. A resync of chosen tables leaves the origin to the apply (their
 * replay, "Resync of chosen tables"), and only builds what is left. */
static int s_finish(s_coord_t *c)
{
    if (c->o->tables_only) {
        size_t built = 0;
        int err = rt__copy_exec(c->conn, "ending the copy", "BEGIN", 0, NULL, NULL, 0);
        if (err == RT_OK)
            err = rt_initcopy_post_data(c->conn, c->plan.source, &built);
        if (err == RT_OK)
            err = rt__copy_exec(c->conn, "ending the copy", "COMMIT", 0, NULL, NULL, 0);
        else if (PQstatus(c->conn) == CONNECTION_OK)
            PQclear(PQexec(c->conn, "ROLLBACK"));
        return err;
    }
    char origin[140], seq[32];
    snprintf(origin, sizeof origin, "rt_%s", c->plan.source);
    rt_lsn_format(c->ready.seq, seq, sizeof seq);
    const char *p[] = {origin, seq};
    const char *ps[] = {c->plan.source};
    int err = rt__copy_exec(c->conn, "ending the copy", "BEGIN", 0, NULL, NULL, 0);
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "creating the replication origin",
                            "SELECT pg_replication_origin_create($1) "
                            "WHERE pg_replication_origin_oid($1) IS NULL",
                            1, p, NULL, 0);
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "advancing the replication origin",
                            "SELECT pg_replication_origin_advance($1, $2::pg_lsn)", 2, p, NULL, 0);
    size_t built = 0;
    if (err == RT_OK)
        err = rt_initcopy_post_data(c->conn, c->plan.source, &built);
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "ending the copy",
                            "DELETE FROM rt.sync_init WHERE source = $1", 1, ps, NULL, 0);
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "ending the copy", "COMMIT", 0, NULL, NULL, 0);
    else if (PQstatus(c->conn) == CONNECTION_OK)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    return err;
}

/* One attempt: RT_OK when the replica is ready to stream. */
static int s_attempt(s_coord_t *c)
{
    int err;
    bool needed = true;
    if (!(c->dealer = rt__copy_dealer(c->o, "sync")))
        return RT_EINVAL;
    if ((err = s_learn_source(c)) != RT_OK)
        return err;
    if ((err = rt__copy_replica_connect(c->o, "rt-subscriber", &c->conn)) != RT_OK)
        return err;
    if ((err = s_replica_state(c, &needed)) != RT_OK)
        return err;
    if (!needed && c->post_only) {
        /* Their rows are in: once these are built, the apply replays what it passed for
         * them (RT_OK: the caller restarts it). */
        if ((err = s_finish(c)) == RT_OK)
            rt_info("resync: the chosen tables are copied; the keys and indexes a stopped "
                    "attempt left to build are built");
        return err;
    }
    if (!needed)
        return c->o->tables_only ? RT_ENOTFOUND : RT_OK;
    if (c->o->state)
        *c->o->state = (rt_initcopy_state_t){.copying = true};
    rt_info("initial copy from source %s: asking the publisher for a snapshot%s", c->plan.source,
            c->o->tables_only ? " (a resync of chosen tables; the others stream meanwhile)"
            : c->start_seq    ? " (resuming a copy that did not finish)"
            : c->fresh_resync ? " (a resync: every table is copied again)"
                              : "");
    if ((err = s_request_snapshot(c)) != RT_OK)
        return err;
    char lsn[32];
    rt_info("initial copy: snapshot %s at %s, %zu tables, records kept from seq %" PRIu64,
            c->ready.text ? c->ready.text : "?", rt_lsn_format(c->ready.lsn, lsn, sizeof lsn),
            c->ready.ntables, c->ready.seq + 1);
    size_t ncopy = 0;
    if ((!c->o->create_tables || c->o->tables_only || (err = s_create_missing(c)) == RT_OK) &&
        (!c->o->tables_only || (err = s_forget_unpublished(c)) == RT_OK) &&
        (err = s_plan(c)) == RT_OK && (err = s_prepare(c, &ncopy)) == RT_OK &&
        (err = s_copy_all(c, ncopy)) == RT_OK)
        err = s_finish(c);
    rt_msg_t end = {
        .type = RT_MSG_SYNC_END, .name = (char *)c->o->name, .sync_id = c->ready.sync_id};
    (void)rt__copy_send(c->dealer, &end);
    if (err == RT_OK && c->o->tables_only)
        rt_info("resync: the chosen tables are copied (changes committed before %s are in the "
                "copy); records after seq %" PRIu64 " are applied to them next",
                lsn, c->ready.seq);
    else if (err == RT_OK)
        rt_info("initial copy done: streaming from seq %" PRIu64
                " (changes committed before %s are in the copy)",
                c->ready.seq + 1, lsn);
    return err;
}

/* True when the replica's table rt.<table> exists and has a row where cond holds (of any
 * source: which one is known once the publisher answers). False when the replica cannot
 * be reached. */
static bool s_replica_holds(const rt_initcopy_opts_t *opts, const char *table, const char *cond)
{
    PGconn *conn = NULL;
    if (rt__copy_replica_connect(opts, "rt-subscriber", &conn) != RT_OK)
        return false;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT to_regclass('rt.%s') IS NOT NULL", table);
    PGresult *res = PQexec(conn, sql);
    bool found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                 strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (found) {
        snprintf(sql, sizeof sql, "SELECT EXISTS (SELECT 1 FROM rt.%s WHERE %s)", table, cond);
        res = PQexec(conn, sql);
        found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    PQfinish(conn);
    return found;
}

/* True when the replica holds an initial copy or resync that did not finish. False when
 * it cannot be reached: the link waits for it, and the apply refuses a source whose copy
 * is unfinished. */
static bool s_unfinished_copy(const rt_initcopy_opts_t *opts)
{
    return s_replica_holds(opts, "sync_init", "true");
}

bool rt_initcopy_tables_pending(const rt_initcopy_opts_t *opts)
{
    return s_replica_holds(opts, "sync_tables", "state = 'c'") ||
           (!s_unfinished_copy(opts) && s_replica_holds(opts, "sync_ddl", "true"));
}

/* Sleeps ms, serving the caller's HTTP requests meanwhile. */
static void s_pause(const rt_initcopy_opts_t *opts, int ms)
{
    zmq_pollitem_t item[1];
    int n = 0;
    int ihttp = rt__copy_http_poll_item(item, &n, opts->http);
    if (ihttp < 0) {
        zclock_sleep(ms);
        return;
    }
    for (int64_t end = rt_mono_ms() + ms, left = ms; left > 0; left = end - rt_mono_ms())
        if (zmq_poll(item, n, left) > 0)
            rt__copy_http_serve(opts->http, item, ihttp);
}

/* rt_initcopy_run, but for clearing opts->state on return. */
static int s_run(const rt_initcopy_opts_t *opts)
{
    if (!opts->init && !opts->resync && !opts->tables_only && !s_unfinished_copy(opts))
        return RT_OK;
    int64_t backoff = S_BACKOFF_MIN_MS;
    for (bool again = false;; again = true) {
        s_coord_t c = {.o = opts};
        int err = s_attempt(&c);
        s_coord_clear(&c);
        /* Nothing left to copy after an attempt that failed: that one had copied it all
         * (a resync of chosen tables whose end was cut off), and the apply must take up
         * the copied tables (RT_OK). */
        if (err == RT_ENOTFOUND && again && opts->tables_only) {
            rt_info("resync: the chosen tables are copied (by the attempt before, whose end "
                    "was cut off)");
            err = RT_OK;
        }
        if (err == RT_OK || err == RT_EINVAL || err == RT_ENOMEM || err == RT_ENOTFOUND)
            return err;
        if (opts->stop && *opts->stop)
            return RT_EAGAIN;
        rt_warn("initial copy: starting again in %.0f s (%s); tables already copied are kept",
                (double)backoff / 1000.0, rt_strerror(err));
        for (int64_t end = rt_mono_ms() + backoff; rt_mono_ms() < end;) {
            if (opts->stop && *opts->stop)
                return RT_EAGAIN;
            s_pause(opts, 100);
        }
        backoff = backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : backoff * 2;
    }
}

int rt_initcopy_run(const rt_initcopy_opts_t *opts)
{
    int err = s_run(opts);
    if (opts->state)
        *opts->state = (rt_initcopy_state_t){0};
    return err;
}

/* Marks the tables of a resync of chosen tables copying ('c'), in one transaction: the
 * apply holds their changes from its next start on. A line that names no table of the
 * replica is said and left out. */
static int s_mark_held(s_coord_t *c, const char *tables)
{
    int err = rt__copy_exec(c->conn, "marking tables to copy", "BEGIN", 0, NULL, NULL, 0);
    size_t marked = 0;
    for (const char *line = tables; err == RT_OK && line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name - 1 ? len : sizeof name - 1),
                 line);
        line = end ? end + 1 : line + len;
        char *dot = strchr(name, '.');
        if (!dot)
            continue;
        *dot = '\0';
        const char *p[] = {c->plan.source, name, dot + 1};
        PGresult *res = rt_pg_exec(c->conn, "replica", "looking up a table",
                                   "SELECT 1 FROM pg_class t JOIN pg_namespace n "
                                   "ON n.oid = t.relnamespace WHERE n.nspname = $1 "
                                   "AND t.relname = $2 AND t.relkind IN ('r', 'p')",
                                   2, p + 1, NULL, 0);
        if (!res) {
            err = RT_EDB;
            break;
        }
        bool exists = PQntuples(res) > 0;
        PQclear(res);
        if (!exists) {
            rt_error("resync: %s.%s is not a table of the replica: it is not copied", name,
                     dot + 1);
            continue;
        }
        err = rt__copy_exec(c->conn, "marking a table to copy",
                            "INSERT INTO rt.sync_tables (source, nspname, relname, state) "
                            "VALUES ($1, $2, $3, 'c') ON CONFLICT (source, nspname, relname) "
                            "DO UPDATE SET state = 'c', lsn = NULL, rows = NULL, replayed = NULL",
                            3, p, NULL, 0);
        if (err == RT_OK)
            rt_info("resync: %s.%s is held (none of its changes apply) until it is copied again",
                    name, dot + 1);
        marked += err == RT_OK;
    }
    if (err == RT_OK)
        err = rt__copy_exec(c->conn, "marking tables to copy", "COMMIT", 0, NULL, NULL, 0);
    else if (PQstatus(c->conn) == CONNECTION_OK)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    return err == RT_OK && !marked ? RT_ENOTFOUND : err;
}

int rt_initcopy_mark(const rt_initcopy_opts_t *opts, const char *tables)
{
    s_coord_t c = {.o = opts};
    int err = RT_EINVAL;
    if ((c.dealer = rt__copy_dealer(opts, "sync")) && (err = s_learn_source(&c)) == RT_OK &&
        (err = rt__copy_replica_connect(opts, "rt-subscriber", &c.conn)) == RT_OK &&
        (err = rt__copy_exec(c.conn, "creating rt.sync_init and rt.sync_tables", rt_initcopy_ddl, 0,
                             NULL, NULL, 0)) == RT_OK)
        err = s_mark_held(&c, tables);
    s_coord_clear(&c);
    return err;
}

/* What the actor is given: the options (strings borrowed from the caller, which outlives
 * the actor) and its own stop flag. */
typedef struct {
    rt_initcopy_opts_t opts;
    volatile sig_atomic_t *stop;
} s_actor_args_t;

static void s_actor(zsock_t *pipe, void *arg)
{
    s_actor_args_t *a = arg;
    zsock_signal(pipe, 0);
    int err = rt_initcopy_run(&a->opts);
    zstr_sendf(pipe, "%d", err);
    /* Until $TERM (zactor_destroy). */
    for (char *cmd; (cmd = zstr_recv(pipe));) {
        bool term = strcmp(cmd, "$TERM") == 0;
        zstr_free(&cmd);
        if (term)
            break;
    }
    free(a);
}

zactor_t *rt_initcopy_actor_new(const rt_initcopy_opts_t *opts, volatile sig_atomic_t *stop)
{
    s_actor_args_t *a = malloc(sizeof *a);
    if (!a)
        return NULL;
    a->opts = *opts;
    a->opts.stop = stop;
    a->opts.http = NULL; /* served by the caller's thread */
    a->opts.state = NULL;
    zactor_t *actor = zactor_new(s_actor, a);
    if (!actor)
        free(a);
    return actor;
}
