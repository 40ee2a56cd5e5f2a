/* publisher/source.c - set-up on the source: checks, publication, slot, START_REPLICATION.
 *
 * Everything rt asks of the source before the replication stream flows, through
 * common/pgconn: connections (normal or replication) and queries whose failure is
 * logged once, names quoted by libpq. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_int.h"
#include "daemon.h"
#include "log.h"
#include "pgconn.h"

/* rt's WAL sender streams a large transaction's changes once those it holds pass this
 * (kB), when the source's logical_decoding_work_mem is larger (PostgreSQL's default is
 * 64MB): the more of a transaction leaves before its commit, the less of the WAL sender's
 * work is left after the source committed, and subscribers apply the blocks while it
 * runs (bench/README, "bulk"). */
#define S_DECODING_KB 8192
/* The source's logical_decoding_work_mem in kB as the publisher's role sees it (0:
 * unknown), read by rt_source_prepare. */
static long s_decoding_kb;

/* A connection to the source, normal or replication=database; NULL when it failed
 * (logged by rt_pg_connect, without the password) or a stop was asked for. */
static PGconn *s_connect(const char *dsn, bool replication)
{
    char opt[64];
    snprintf(opt, sizeof opt, "-c logical_decoding_work_mem=%dkB", S_DECODING_KB);
    rt_pg_opts_t o = {.dsn = dsn,
                      .what = "the source",
                      .application_name = "rt-publisher",
                      .replication = replication,
                      .options = replication && s_decoding_kb > S_DECODING_KB ? opt : NULL,
                      .stop = rt_daemon_stop_flag()};
    PGconn *conn = NULL;
    return rt_pg_connect(&o, &conn, NULL, 0) == RT_OK ? conn : NULL;
}

static PGresult *s_query(PGconn *conn, const char *what, const char *sql, int nparams,
                         const char *const *params)
{
    return rt_pg_exec(conn, "source", what, sql, nparams, params, NULL, 0);
}

/* ---- Set-up. */

/* Checks wal_level and creates the publication when missing. */
int rt_source_prepare(const rt_capture_opts_t *opts)
{
    int rc = RT_EDB;
    PGconn *conn = s_connect(opts->dsn, false);
    if (!conn)
        return RT_EDB;
    PGresult *res = s_query(conn, "reading wal_level", "SHOW wal_level", 0, NULL);
    if (!res)
        goto cleanup;
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        rt_error("source: wal_level is '%s'; rt needs wal_level = logical (set it in "
                 "postgresql.conf and restart the server)",
                 PQgetvalue(res, 0, 0));
        PQclear(res);
        goto cleanup;
    }
    PQclear(res);
    res = s_query(conn, "reading logical_decoding_work_mem",
                  "SELECT setting FROM pg_catalog.pg_settings "
                  "WHERE name = 'logical_decoding_work_mem' AND unit = 'kB'",
                  0, NULL);
    if (!res)
        goto cleanup;
    s_decoding_kb = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);

    const char *params[] = {opts->publication};
    res = s_query(conn, "looking up the publication",
                  "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params);
    if (!res)
        goto cleanup;
    bool exists = PQntuples(res) > 0;
    PQclear(res);
    if (!exists) {
        char *ident = rt_pg_ident(conn, opts->publication);
        if (!ident)
            goto cleanup;
        char sql[512];
        snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR ALL TABLES", ident);
        free(ident);
        res = s_query(conn, "creating the publication", sql, 0, NULL);
        if (!res)
            goto cleanup;
        PQclear(res);
        rt_info("created publication %s FOR ALL TABLES", opts->publication);
    }
    rc = opts->ddl ? rt_ddl_install(conn, opts->publication) : RT_OK;
cleanup:
    PQfinish(conn);
    return rc;
}

/* Opens the replication connection, creates the slot if missing, starts streaming. */
int rt_source_start(const rt_capture_opts_t *opts, bool wait_busy, PGconn **out)
{
    PGconn *conn = s_connect(opts->dsn, true);
    if (!conn)
        return RT_EDB;

    char sql[1024];
    char line[RT_PG_ERR_MAX];
    char *slot = NULL, *pub = NULL, *pub_lit = NULL;
    const char *params[] = {opts->slot};
    PGresult *res = s_query(conn, "IDENTIFY_SYSTEM", "IDENTIFY_SYSTEM", 0, NULL);
    if (!res)
        goto fail;
    PQclear(res);
    /* The slot as a quoted identifier; the publication as a literal holding one. */
    if (!(slot = rt_pg_ident(conn, opts->slot)) || !(pub = rt_pg_ident(conn, opts->publication)) ||
        !(pub_lit = rt_pg_literal(conn, pub)))
        goto fail;

    /* The replication connection cannot run normal queries with parameters; use a
     * normal connection to look the slot up. */
    PGconn *q = s_connect(opts->dsn, false);
    if (!q)
        goto fail;
    res = s_query(q, "looking up the replication slot",
                  "SELECT plugin, database = current_database() FROM pg_replication_slots "
                  "WHERE slot_name = $1",
                  1, params);
    if (!res) {
        PQfinish(q);
        goto fail;
    }
    bool exists = PQntuples(res) > 0;
    if (exists && (strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0 ||
                   strcmp(PQgetvalue(res, 0, 1), "t") != 0)) {
        rt_error("source: replication slot \"%s\" exists but is not a pgoutput slot of this "
                 "database",
                 opts->slot);
        PQclear(res);
        PQfinish(q);
        goto fail;
    }
    PQclear(res);
    PQfinish(q);

    if (!exists) {
        snprintf(sql, sizeof sql,
                 "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'nothing')", slot);
        if (!(res = s_query(conn, "creating the replication slot", sql, 0, NULL)))
            goto fail;
        rt_info("created replication slot %s at %s", opts->slot, PQgetvalue(res, 0, 1));
        PQclear(res);
    }

    snprintf(sql, sizeof sql,
             "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '2', "
             "streaming 'on', publication_names %s, messages 'true')",
             slot, pub_lit);
    int64_t busy_since = 0;
    while (PQresultStatus(res = PQexec(conn, sql)) != PGRES_COPY_BOTH) {
        /* 55006 object_in_use: another WAL sender has the slot. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool busy = wait_busy && state && strcmp(state, "55006") == 0;
        int64_t now = rt_mono_ms();
        rt_pg_error_line(PQerrorMessage(conn), line, sizeof line);
        PQclear(res);
        if (busy && !busy_since) {
            busy_since = now;
            rt_warn("source: %s; waiting up to %d s for it (the WAL sender of a publisher "
                    "that stopped ends when it notices)",
                    line, RT_SLOT_BUSY_WAIT_MS / 1000);
        }
        if (!busy || now - busy_since >= RT_SLOT_BUSY_WAIT_MS || rt_daemon_stopping()) {
            rt_error("source: START_REPLICATION on slot \"%s\" failed: %s", opts->slot, line);
            goto fail;
        }
        zclock_sleep(250);
    }
    PQclear(res);
    if (busy_since)
        rt_info("source: replication slot %s is ours after %.1f s", opts->slot,
                (double)(rt_mono_ms() - busy_since) / 1000.0);
    free(slot);
    free(pub);
    free(pub_lit);
    *out = conn;
    return RT_OK;
fail:
    free(slot);
    free(pub);
    free(pub_lit);
    PQfinish(conn);
    return RT_EDB;
}
