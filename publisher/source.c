/* publisher/source.c - set-up on the source: checks, publication, slot, START_REPLICATION.
 *
 * Everything rt asks of the source before the replication stream flows, and the libpq
 * helpers it goes through: a connection (normal or replication), a query whose failure
 * is logged, and the server's error message without its trailing newline. */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "capture_int.h"
#include "log.h"

/* ---- libpq helpers: every connection and query of the set-up goes through them. */

char *rt_source_error(PGconn *conn)
{
    char *msg = PQerrorMessage(conn);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    return msg;
}

static PGconn *s_connect(const char *dsn, bool replication)
{
    /* expand_dbname = 1: the dbname value is a whole connection string; the keywords
     * after it override what it says. */
    const char *keys[] = {"dbname", "application_name", "replication", NULL};
    const char *vals[] = {dsn, "rt-publisher", "database", NULL};
    if (!replication)
        keys[2] = vals[2] = NULL;
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        rt_error("cannot connect to the source (%s): %s", dsn, rt_source_error(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs a query expecting tuples or command ok; returns the result or NULL (logged). */
static PGresult *s_query(PGconn *conn, const char *what, const char *sql, int nparams,
                         const char *const *params)
{
    PGresult *res = nparams ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                            : PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rt_error("source: %s failed: %s", what, rt_source_error(conn));
        PQclear(res);
        return NULL;
    }
    return res;
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

    const char *params[] = {opts->publication};
    res = s_query(conn, "looking up the publication",
                  "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params);
    if (!res)
        goto cleanup;
    bool exists = PQntuples(res) > 0;
    PQclear(res);
    if (!exists) {
        char *ident = PQescapeIdentifier(conn, opts->publication, strlen(opts->publication));
        char sql[512];
        snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR ALL TABLES", ident);
        PQfreemem(ident);
        res = s_query(conn, "creating the publication", sql, 0, NULL);
        if (!res)
            goto cleanup;
        PQclear(res);
        rt_info("created publication %s FOR ALL TABLES", opts->publication);
    }
    rc = RT_OK;
cleanup:
    PQfinish(conn);
    return rc;
}

/* Opens the replication connection, creates the slot if missing, starts streaming. */
int rt_source_start(const rt_capture_opts_t *opts, PGconn **out)
{
    PGconn *conn = s_connect(opts->dsn, true);
    if (!conn)
        return RT_EDB;

    char sql[1024];
    const char *params[] = {opts->slot};
    PGresult *res = PQexec(conn, "IDENTIFY_SYSTEM");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rt_error("source: IDENTIFY_SYSTEM failed: %s", rt_source_error(conn));
        PQclear(res);
        goto fail;
    }
    PQclear(res);

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
                 "CREATE_REPLICATION_SLOT \"%s\" LOGICAL pgoutput (SNAPSHOT 'nothing')",
                 opts->slot);
        res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rt_error("source: creating replication slot \"%s\" failed: %s", opts->slot,
                     rt_source_error(conn));
            PQclear(res);
            goto fail;
        }
        rt_info("created replication slot %s at %s", opts->slot, PQgetvalue(res, 0, 1));
        PQclear(res);
    }

    snprintf(sql, sizeof sql,
             "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '2', "
             "streaming 'on', publication_names '\"%s\"', messages 'true')",
             opts->slot, opts->publication);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        rt_error("source: START_REPLICATION on slot \"%s\" failed: %s", opts->slot,
                 rt_source_error(conn));
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    *out = conn;
    return RT_OK;
fail:
    PQfinish(conn);
    return RT_EDB;
}
