/* subscriber/apply_session.c - the applier's replica session (apply.h): connection,
 * settings, rt's tables, the replication origin bound to it, and moving its progress.
 * Runs outside pipeline mode, and enters it once the session is set up.
 */
#include "apply_int.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initcopy.h"
#include "log.h"
#include "pgconn.h"

/* Connection attempts give up after this long. */
#define S_CONNECT_TIMEOUT_MS 10000
/* A side session's lock_timeout (apply_side.c). */
#define S_SIDE_LOCK_TIMEOUT "'1s'"
/* rt's deadlock_timeout on the replica: shorter than PostgreSQL's default of 1 s. */
#define S_DEADLOCK_TIMEOUT "'100ms'"

/* Opens the connection, polling so that a stop request is seen; a failure is logged
 * and kept as the last error. */
static int s_open(rt_apply_t *self)
{
    rt_pg_opts_t o = {.dsn = self->dsn,
                      .what = "the replica",
                      .application_name = "rt-subscriber",
                      .timeout_ms = S_CONNECT_TIMEOUT_MS,
                      .stop = self->stop};
    return rt_pg_connect(&o, &self->conn, self->last_error, sizeof self->last_error);
}

/* Runs one setup command with up to two text parameters; returns its result
 * (tuples or command ok) or NULL after logging what failed (kept as the last error). */
static PGresult *s_setup_exec(rt_apply_t *self, const char *what, const char *sql, int nparams,
                              const char *p1, const char *p2)
{
    const char *params[2] = {p1, p2};
    /* A side session's failure is told once, as a warning, by its user (streamed.c). */
    return (self->side ? rt_pg_exec_quiet : rt_pg_exec)(self->conn, "replica session setup", what,
                                                        sql, nparams, params, self->last_error,
                                                        sizeof self->last_error);
}

/* rt.progress: per source, the seq and commit LSN of the last record a replica transaction
 * committed before the publisher had stored it (protocol.md, "Live records and
 * durability"). Valid while the origin's progress is that seq. */
static const char *const s_progress_ddl =
    RT_SCHEMA_DDL_BEGIN "IF to_regclass('rt.progress') IS NULL THEN "
                        "CREATE TABLE rt.progress (source text PRIMARY KEY, seq bigint NOT NULL, "
                        "commit_lsn pg_lsn NOT NULL); "
                        "END IF; END$rt$";
static const char *const s_progress_read =
    "SELECT seq, commit_lsn FROM rt.progress WHERE source = $1";
/* The origin's progress of the transaction: parameters lsn (the seq) and ts (the commit
 * time, microseconds since 2000). */
#define S_ORIGIN_SETUP(lsn, ts)                                                                    \
    "SELECT pg_replication_origin_xact_setup(" lsn "::pg_lsn, "                                    \
    "timestamptz '2000-01-01 00:00:00+00' + " ts "::bigint * interval '1 microsecond')"
const char rt__origin_setup_sql[] = S_ORIGIN_SETUP("$1", "$2");
/* The same with the mark in rt.progress (source, seq, commit LSN): one statement. */
const char rt__origin_setup_marked_sql[] =
    "WITH rt_p AS (INSERT INTO rt.progress (source, seq, commit_lsn) "
    "VALUES ($3, $4, $5::pg_lsn) ON CONFLICT (source) DO UPDATE "
    "SET seq = excluded.seq, commit_lsn = excluded.commit_lsn) " S_ORIGIN_SETUP("$1", "$2");

/* Checks that a source name from the publisher can be part of an origin name. */
static bool s_source_ok(const char *source)
{
    size_t n = strlen(source);
    if (n == 0 || n + 3 > RT_APPLY_MAX_ORIGIN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)source[i] < 0x20 || source[i] == 0x7f)
            return false;
    return true;
}

/* Switches the replica connection to non-blocking pipeline mode (logged on failure). */
static int s_enter_pipeline(rt_apply_t *self)
{
    if (PQsetnonblocking(self->conn, 1) == 0 && PQenterPipelineMode(self->conn) == 1)
        return RT_OK;
    char line[512];
    rt__apply_error(self, "cannot enter pipeline mode on the replica: %s",
                    rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
    return RT_EDB;
}

/* Loads the skipped records (main's session) and enters pipeline mode: the session is
 * ready to apply. RT_OK, RT_ENOMEM or RT_EDB (logged). */
static int s_ready(rt_apply_t *self)
{
    int err;
    if (!self->side && (err = rt__skip_load(self)) != RT_OK)
        return err == RT_ENOMEM ? err : RT_EDB;
    return s_enter_pipeline(self);
}

/* s_setup_exec for a command whose result is not needed: false when it failed. */
static bool s_setup_run(rt_apply_t *self, const char *what, const char *sql, int nparams,
                        const char *p1, const char *p2)
{
    PGresult *res = s_setup_exec(self, what, sql, nparams, p1, p2);
    PQclear(res);
    return res != NULL;
}

int rt_apply_connect(rt_apply_t *self, const char *source, uint64_t *applied_seq)
{
    PGresult *res = NULL;
    int err;

    rt_apply_close(self);
    if (!s_source_ok(source)) {
        rt__apply_error(self,
                        "source name from the publisher is not usable for a replication origin "
                        "(empty, too long or control characters)");
        return RT_EINVAL;
    }
    char *copy = strdup(source);
    if (!copy)
        return RT_ENOMEM;
    free(self->source);
    self->source = copy;
    snprintf(self->origin, sizeof self->origin, self->side ? "rt_%s#stream" : "rt_%s", source);

    if ((err = s_open(self)) != RT_OK)
        return err;
    snprintf(self->target, sizeof self->target, "%s@%s:%s", PQdb(self->conn), PQhost(self->conn),
             PQport(self->conn));
    err = RT_EDB;
    char msg[512];
    if (rt_pg_standby(self->conn, "the replica", "--target", msg, sizeof msg)) {
        rt__apply_error(self, "%s", msg);
        goto cleanup;
    }
    if (!s_setup_run(self, "session_replication_role", "SET session_replication_role = replica", 0,
                     NULL, NULL))
        goto cleanup;
    /* A commit does not wait for the replica's WAL flush; what is durable is what
     * rt_apply_flush found flushed, and only that is acknowledged to the publisher. */
    if (!s_setup_run(self, "synchronous_commit", "SET synchronous_commit = off", 0, NULL, NULL))
        goto cleanup;
    /* In a deadlock with the application's transactions, rt's is the one the replica
     * fails (the session that waits deadlock_timeout first runs the check and fails
     * itself), and rt applies it again. Only where the role may set it (a superuser, or
     * GRANT SET ON PARAMETER deadlock_timeout); otherwise either side may be failed. */
    res = PQexec(self->conn, "SET deadlock_timeout = " S_DEADLOCK_TIMEOUT);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *why = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        rt_debug("the replica keeps its deadlock_timeout for rt's session: %s",
                 why ? why : "no result");
    }
    PQclear(res);
    /* A side session waits for a lock the replica's own sessions hold at most this long:
     * waiting, it would hold up every other transaction the subscriber applies; given up,
     * its transaction is applied after its commit, where main waits as it always did. */
    if (self->side) {
        if (!s_setup_run(self, "lock_timeout", "SET lock_timeout = " S_SIDE_LOCK_TIMEOUT, 0, NULL,
                         NULL))
            goto cleanup;
    }
    if (!s_setup_run(self, "application_name", "SET application_name = 'rt-subscriber'", 0, NULL,
                     NULL))
        goto cleanup;
    if (!(res = s_setup_exec(self, "search_path",
                             "SELECT pg_catalog.current_setting('search_path')", 0, NULL, NULL)))
        goto cleanup;
    snprintf(self->search_path, sizeof self->search_path, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    /* Without the "already exists, skipping" notices. */
    if (!s_setup_run(self, "client_min_messages", "SET client_min_messages = warning", 0, NULL,
                     NULL))
        goto cleanup;
    if (!s_setup_run(self, "create rt.conflicts", rt__conflicts_ddl, 0, NULL, NULL))
        goto cleanup;
    if (!s_setup_run(self, "create rt.progress", s_progress_ddl, 0, NULL, NULL))
        goto cleanup;
    if (!(res = s_setup_exec(self, "read rt.progress", s_progress_read, 1, self->source, NULL)))
        goto cleanup;
    self->mark_seq = 0;
    self->mark_lsn = 0;
    if (PQntuples(res) == 1 && (rt_lsn_parse(PQgetvalue(res, 0, 1), &self->mark_lsn) != RT_OK ||
                                sscanf(PQgetvalue(res, 0, 0), "%" SCNu64, &self->mark_seq) != 1)) {
        rt__apply_error(self, "replica session setup failed: rt.progress holds '%s', '%s'",
                        PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    if (rt__versioned_setup(self, self->policy) != RT_OK)
        goto cleanup;
    if (!s_setup_run(self, "client_min_messages", "RESET client_min_messages", 0, NULL, NULL))
        goto cleanup;
    if (!s_setup_run(self, "create origin",
                     "SELECT pg_replication_origin_create($1) "
                     "WHERE pg_replication_origin_oid($1) IS NULL",
                     1, self->origin, NULL))
        goto cleanup;
    if (!s_setup_run(self, "bind origin", "SELECT pg_replication_origin_session_setup($1)", 1,
                     self->origin, NULL))
        goto cleanup;
    if (!(res = s_setup_exec(self, "read origin progress",
                             "SELECT pg_replication_origin_progress($1, true)", 1, self->origin,
                             NULL)))
        goto cleanup;
    uint64_t seq = 0;
    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        rt__apply_error(
            self, "replica session setup failed: pg_replication_origin_progress returned %d rows",
            PQntuples(res));
        goto cleanup;
    }
    if (!PQgetisnull(res, 0, 0) && rt_lsn_parse(PQgetvalue(res, 0, 0), &seq) != RT_OK) {
        rt__apply_error(self,
                        "replica session setup failed: origin %s has progress '%s', not an LSN",
                        self->origin, PQgetvalue(res, 0, 0));
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    if ((err = s_ready(self)) != RT_OK)
        goto cleanup;
    /* A replay for resynced tables resumes where it stopped (the origin says how far the
     * other tables are). */
    if (self->replay_to)
        seq = self->replay_from;
    self->applied_seq = seq;
    self->durable_seq = seq; /* read with flush: every commit of the origin is on disk */
    rt__apply_reset_txn(self);
    rt__versioned_purge(self, true);
    *applied_seq = seq;
    err = RT_OK;
cleanup:
    PQclear(res);
    if (err != RT_OK)
        rt__apply_drop(self);
    return err;
}

int rt_apply_reset(rt_apply_t *self, uint64_t seq)
{
    char lsn[32];
    int err = RT_EDB;

    if (!self->conn)
        return RT_EIO;
    if (self->in_txn)
        rt_apply_rollback(self);
    if (!self->conn)
        return RT_EIO;
    if (PQexitPipelineMode(self->conn) != 1 || PQsetnonblocking(self->conn, 0) != 0) {
        char line[512];
        rt__apply_error(self, "cannot leave pipeline mode on the replica to reset origin %s: %s",
                        self->origin,
                        rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
        goto failed;
    }
    rt_lsn_format(seq, lsn, sizeof lsn);
    if (!s_setup_run(self, "end the origin session", "SELECT pg_replication_origin_session_reset()",
                     0, NULL, NULL))
        goto failed;
    if (!s_setup_run(self, "move the origin's progress",
                     "SELECT pg_replication_origin_advance($1, $2::pg_lsn)", 2, self->origin, lsn))
        goto failed;
    if (!s_setup_run(self, "bind origin", "SELECT pg_replication_origin_session_setup($1)", 1,
                     self->origin, NULL))
        goto failed;
    /* No leftover xact_setup position may be committed with a later transaction. */
    if (!s_setup_run(self, "clear the transaction origin",
                     "SELECT pg_replication_origin_xact_reset()", 0, NULL, NULL))
        goto failed;
    if ((err = s_ready(self)) != RT_OK)
        goto failed;
    rt_info("origin %s of replica %s moved from seq %" PRIu64 " to seq %" PRIu64, self->origin,
            self->target, self->applied_seq, seq);
    self->applied_seq = seq;
    self->stop_seq = 0;
    rt__apply_reset_txn(self);
    return RT_OK;
failed:
    rt__apply_drop(self);
    return err;
}
