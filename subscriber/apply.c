/* subscriber/apply.c - applies outbox records to the replica exactly once (libpq).
 *
 * Session: session_replication_role = replica, replication origin rt_<source> bound
 * to the session; its remote_lsn is the seq of the last LAST record applied.
 *
 * Each record is one pipeline segment on an explicitly open transaction:
 *   [BEGIN] (Parse rt_<n>)? Bind/Execute per change ... Sync
 * and its results are checked (UPDATE/DELETE must touch exactly one row) before
 * the next record is sent (apply_pipeline.c). A run of INSERTs into one relation is
 * written with COPY ... FROM STDIN instead (apply_copy.c), except under apply_remote
 * and for the records a failed COPY covered. A group of source transactions ends with
 *   [SELECT pg_current_xact_id()] SELECT pg_replication_origin_xact_setup(seq, ts) COMMIT Sync
 * so the data and the progress commit together. The connection is non-blocking
 * while sending so that a large segment never deadlocks against the results.
 *
 * Conflicts (an INSERT of an existing key, an UPDATE or DELETE matching no row):
 * under the error policy the transaction is rolled back, the conflict recorded in
 * rt.conflicts in a transaction of its own and RT_ECONFLICT returned. Under
 * apply_remote each record is preceded by SAVEPOINT rt_record; a conflicting record
 * is rolled back to it and applied again one change at a time:
 *   INSERT   SAVEPOINT rt_change; INSERT; on 23505: ROLLBACK TO rt_change and
 *            UPDATE the row with that key to the new row      (insert_exists)
 *   UPDATE   0 rows: INSERT the new row if it is complete      (update_missing)
 *   DELETE   0 rows: nothing                                    (delete_missing)
 * each resolution recorded in rt.conflicts in the same transaction.
 */
#include "apply_int.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sqlgen.h"

#include <stdarg.h>

/* Connection attempts give up after this long. */
#define S_CONNECT_TIMEOUT_MS 10000
/* Source transactions per replica transaction under apply_remote: each record is a
 * subtransaction there, and PostgreSQL caches only 64 subtransaction ids per backend. */
#define S_REMOTE_GROUP_TXNS 50
/* Resolved conflicts are logged one by one up to this many, then every S_LOG_EVERY-th. */
#define S_LOG_FIRST 10
#define S_LOG_EVERY 1000

/* The table every conflict is recorded in (the rt schema is left out of checksums). */
static const char *const s_conflicts_schema = "CREATE SCHEMA IF NOT EXISTS rt";
static const char *const s_conflicts_ddl =
    "CREATE TABLE IF NOT EXISTS rt.conflicts ("
    "id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), source text, "
    "seq bigint, relation text, op text, kind text, resolution text, detail text)";
static const char *const s_conflicts_insert =
    "INSERT INTO rt.conflicts (source, seq, relation, op, kind, resolution, detail) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)";

rt_apply_t *rt_apply_new(const char *dsn, volatile sig_atomic_t *stop)
{
    rt_apply_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup(dsn);
    self->stop = stop;
    self->cache = rt__pipeline_cache_new();
    if (!self->dsn || !self->cache) {
        rt_apply_destroy(&self);
        return NULL;
    }
    return self;
}

void rt_apply_destroy(rt_apply_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_apply_t *self = *self_p;
    rt_apply_close(self);
    zhashx_destroy(&self->cache);
    free(self->dsn);
    free(self->source);
    free(self->ops);
    free(self->params);
    free(self->trels);
    free(self->relkeys);
    free(self->copy_buf);
    free(self);
    *self_p = NULL;
}

bool rt__apply_stopping(const rt_apply_t *self)
{
    return self->stop && *self->stop;
}

const char *rt__apply_line(const char *msg, char *buf, size_t size)
{
    size_t n = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && n + 1 < size; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < size)
            buf[n++] = ' ';
        space = false;
        buf[n++] = *p;
    }
    buf[n] = '\0';
    return buf;
}

void rt__apply_error(rt_apply_t *self, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rt_error("%s", line);
    size_t n = strnlen(line, sizeof self->last_error - 1);
    memcpy(self->last_error, line, n);
    self->last_error[n] = '\0';
}

/* Forgets the open transaction (after rollback, commit failure or disconnect). */
static void s_reset_txn(rt_apply_t *self)
{
    self->in_txn = false;
    self->mid_txn = false;
    self->position = self->applied_seq;
    self->group_txns = 0;
    self->group_bytes = 0;
    self->group_changes = 0;
    self->group_seq = 0;
    self->group_ts = 0;
    self->group_conflicts = 0;
    self->copying = false;
    self->copy_len = 0;
    self->run_rows = 0;
    self->run_key[0] = '\0';
}

void rt__apply_drop(rt_apply_t *self)
{
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    zhashx_purge(self->cache);
    s_reset_txn(self);
}

void rt_apply_close(rt_apply_t *self)
{
    if (!self->conn)
        return;
    if (self->in_txn && PQstatus(self->conn) == CONNECTION_OK)
        rt_apply_rollback(self);
    rt__apply_drop(self);
}

bool rt_apply_connected(const rt_apply_t *self)
{
    return self->conn != NULL;
}

uint64_t rt_apply_applied_seq(const rt_apply_t *self)
{
    return self->applied_seq;
}

uint64_t rt_apply_next_seq(const rt_apply_t *self)
{
    return self->position + 1;
}

bool rt_apply_in_txn(const rt_apply_t *self)
{
    return self->in_txn;
}

bool rt_apply_commit_ready(const rt_apply_t *self)
{
    return self->in_txn && !self->mid_txn && self->group_txns > 0;
}

bool rt_apply_group_full(const rt_apply_t *self)
{
    uint32_t txns = self->policy == RT_CONFLICT_APPLY_REMOTE || self->position < self->remote_until
                        ? S_REMOTE_GROUP_TXNS
                        : RT_APPLY_GROUP_TXNS;
    return self->group_txns >= txns || self->group_bytes >= RT_APPLY_GROUP_BYTES;
}

void rt_apply_set_policy(rt_apply_t *self, int policy)
{
    self->policy = policy == RT_CONFLICT_APPLY_REMOTE ? RT_CONFLICT_APPLY_REMOTE
                                                      : RT_CONFLICT_ERROR;
}

void rt_apply_set_remote_until(rt_apply_t *self, uint64_t seq)
{
    self->remote_until = seq;
}

uint64_t rt_apply_conflicts(const rt_apply_t *self)
{
    return self->conflicts;
}

const char *rt_apply_last_error(const rt_apply_t *self)
{
    return self->last_error;
}

int64_t rt_apply_last_commit_ts(const rt_apply_t *self)
{
    return self->last_commit_ts;
}

int64_t rt_apply_last_applied_at(const rt_apply_t *self)
{
    return self->last_applied_at;
}

int64_t rt_apply_txn_age_ms(const rt_apply_t *self)
{
    return self->in_txn ? rt_mono_ms() - self->txn_start_ms : 0;
}

const char *rt_apply_target(const rt_apply_t *self)
{
    return self->target;
}

/* ---------------------------------------------------------------------------------
 * Connection and session setup (not in pipeline mode). */

int rt__apply_wait_fd(rt_apply_t *self, int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        if (rt__apply_stopping(self))
            return RT_EAGAIN;
        int step = RT_APPLY_WAIT_STEP_MS;
        if (deadline_ms) {
            int64_t left = deadline_ms - rt_mono_ms();
            if (left <= 0)
                return RT_EDB;
            if (left < step)
                step = (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, step);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return RT_EIO;
    }
}

/* Opens the connection with PQconnectStartParams, polling so a stop request is seen. */
static int s_open(rt_apply_t *self)
{
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "rt-subscriber", self->dsn, NULL};
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    char line[512];
    int64_t deadline = rt_mono_ms() + S_CONNECT_TIMEOUT_MS;
    int err = RT_EDB;

    if (!conn)
        return RT_ENOMEM;
    if (PQstatus(conn) == CONNECTION_BAD) {
        rt__apply_error(self, "cannot connect to the replica: %s",
                        rt__apply_line(PQerrorMessage(conn), line, sizeof line));
        goto cleanup;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            rt__apply_error(self, "cannot connect to the replica: %s",
                            rt__apply_line(PQerrorMessage(conn), line, sizeof line));
            goto cleanup;
        }
        int rc = rt__apply_wait_fd(self, PQsocket(conn),
                                   st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (rc == RT_EDB) {
            rt__apply_error(self, "cannot connect to the replica: no answer within %d s",
                            S_CONNECT_TIMEOUT_MS / 1000);
            goto cleanup;
        }
        if (rc != 0) {
            err = rc;
            goto cleanup;
        }
        st = PQconnectPoll(conn);
    }
    self->conn = conn;
    conn = NULL;
    err = RT_OK;
cleanup:
    if (conn)
        PQfinish(conn);
    return err;
}

/* Runs one setup command with up to two text parameters; returns its result
 * (tuples or command ok) or NULL after logging what failed. */
static PGresult *s_setup_exec(rt_apply_t *self, const char *what, const char *sql, int nparams,
                              const char *p1, const char *p2)
{
    const char *params[2] = {p1, p2};
    PGresult *res = PQexecParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char line[512];
    rt__apply_error(self, "replica session setup failed (%s): SQLSTATE %s: %s", what,
                    state ? state : "?",
                    rt__apply_line(res ? PQresultErrorMessage(res) : PQerrorMessage(self->conn),
                                   line, sizeof line));
    PQclear(res);
    return NULL;
}

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
                    rt__apply_line(PQerrorMessage(self->conn), line, sizeof line));
    return RT_EDB;
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
    snprintf(self->origin, sizeof self->origin, "rt_%s", source);

    if ((err = s_open(self)) != RT_OK)
        return err;
    snprintf(self->target, sizeof self->target, "%s@%s:%s", PQdb(self->conn), PQhost(self->conn),
             PQport(self->conn));
    err = RT_EDB;
    if (!(res = s_setup_exec(self, "session_replication_role",
                             "SET session_replication_role = replica", 0, NULL, NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "application_name", "SET application_name = 'rt-subscriber'", 0,
                             NULL, NULL)))
        goto cleanup;
    PQclear(res);
    /* Without the "already exists, skipping" notices. */
    if (!(res = s_setup_exec(self, "client_min_messages", "SET client_min_messages = warning", 0,
                             NULL, NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "create schema rt", s_conflicts_schema, 0, NULL, NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "create rt.conflicts", s_conflicts_ddl, 0, NULL, NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "client_min_messages", "RESET client_min_messages", 0, NULL,
                             NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "create origin",
                             "SELECT pg_replication_origin_create($1) "
                             "WHERE pg_replication_origin_oid($1) IS NULL",
                             1, self->origin, NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "bind origin", "SELECT pg_replication_origin_session_setup($1)",
                             1, self->origin, NULL)))
        goto cleanup;
    PQclear(res);
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
    if (s_enter_pipeline(self) != RT_OK)
        goto cleanup;
    self->applied_seq = seq;
    s_reset_txn(self);
    *applied_seq = seq;
    err = RT_OK;
cleanup:
    PQclear(res);
    if (err != RT_OK)
        rt__apply_drop(self);
    return err;
}

/* Writes "(k1, k2)=(v1, v2)" for the key columns of rel in img (values cut at 40 bytes)
 * into buf; "" when there is no key or no image. */
static void s_key_text(const rt_relation_t *rel, const rt_value_t *img, uint32_t n, char *buf,
                       size_t size)
{
    char names[256] = "", vals[256] = "";
    size_t nl = 0, vl = 0;
    buf[0] = '\0';
    if (!img || n != rel->ncols)
        return;
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (!rel->cols[i].key)
            continue;
        const rt_value_t *v = &img[i];
        const char *text = v->kind == RT_VAL_TEXT ? v->data
                           : v->kind == RT_VAL_NULL ? "NULL" : "(unchanged)";
        int a = snprintf(names + nl, sizeof names - nl, "%s%s", nl ? ", " : "", rel->cols[i].name);
        int b = snprintf(vals + vl, sizeof vals - vl, "%s%.40s", vl ? ", " : "", text);
        if (a < 0 || b < 0 || (size_t)a >= sizeof names - nl || (size_t)b >= sizeof vals - vl)
            break;
        nl += (size_t)a;
        vl += (size_t)b;
    }
    if (nl)
        snprintf(buf, size, "(%s)=(%s)", names, vals);
}

const char *rt__conflict_op_name(char op)
{
    return op == 'I' ? "INSERT" : op == 'U' ? "UPDATE" : op == 'D' ? "DELETE" : "TRUNCATE";
}

void rt__conflict_note(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, char op,
                       const char *kind, const char *fmt, ...)
{
    rt__conflict_t *c = &self->conflict;
    const rt_change_t *ch = &rec->changes[idx];
    memset(c, 0, sizeof *c);
    c->seq = rec->seq;
    c->change = idx;
    char *table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    snprintf(c->relation, sizeof c->relation, "%s", table ? table : "?");
    free(table);
    snprintf(c->op, sizeof c->op, "%s", rt__conflict_op_name(op));
    snprintf(c->kind, sizeof c->kind, "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    self->conflict_set = true;
}

void rt__conflict_key(const rt_record_t *rec, const rt_change_t *ch, char *buf, size_t size)
{
    const rt_relation_t *rel = &rec->rels[ch->rel];
    if (ch->old_kind)
        s_key_text(rel, ch->old, ch->nold, buf, size);
    else
        s_key_text(rel, ch->new_, ch->nnew, buf, size);
}

/* Handles a failed segment: drops a broken connection, else rolls back. */
static int s_failed(rt_apply_t *self, int err)
{
    if (err == RT_EAGAIN) {
        rt__apply_drop(self);
        return err;
    }
    if (err == RT_EIO || !self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        char line[512];
        rt__apply_error(self, "lost connection to the replica %s: %s", self->target,
                        self->conn ? rt__apply_line(PQerrorMessage(self->conn), line, sizeof line)
                                   : "closed");
        rt__apply_drop(self);
        return RT_EIO;
    }
    rt_apply_rollback(self);
    if (!self->conn)
        return RT_EIO;
    return err;
}

void rt_apply_rollback(rt_apply_t *self)
{
    if (!self->conn || !self->in_txn) {
        s_reset_txn(self);
        return;
    }
    self->nops = 0;
    if (self->copying && rt__copy_abort(self) != RT_OK) {
        rt__apply_drop(self);
        return;
    }
    int err = rt__pipeline_send(self, RT__OP_ROLLBACK, "ROLLBACK", 0, NULL);
    if (err == RT_OK)
        err = rt__pipeline_sync(self, NULL);
    if (err != RT_OK) {
        if (err != RT_EAGAIN) {
            char line[512];
            rt__apply_error(self, "lost connection to the replica %s during rollback: %s",
                            self->target,
                            rt__apply_line(PQerrorMessage(self->conn), line, sizeof line));
        }
        rt__apply_drop(self);
        return;
    }
    s_reset_txn(self);
}

/* ---------------------------------------------------------------------------------
 * Conflicts. */

/* Queues the INSERT of self->conflict into rt.conflicts with resolution. */
static int s_queue_conflict_row(rt_apply_t *self, const char *resolution)
{
    const rt__conflict_t *c = &self->conflict;
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, c->seq);
    const char *params[7] = {self->source, seq, c->relation, c->op, c->kind, resolution,
                             c->detail};
    return rt__pipeline_send(self, RT__OP_MISC, s_conflicts_insert, 7, params);
}

/* Logs a conflict that apply_remote resolved (the first few, then a sample). */
static void s_log_resolved(rt_apply_t *self, const char *resolution)
{
    uint64_t n = self->conflicts + self->group_conflicts;
    if (n <= S_LOG_FIRST || n % S_LOG_EVERY == 0)
        rt_info("conflict at seq %" PRIu64 " (%s on %s) %s: %s (%" PRIu64 " conflicts so far)",
                self->conflict.seq, self->conflict.kind, self->conflict.relation, resolution,
                self->conflict.detail, n);
}

/* A conflict resolved inside the open transaction: recorded there, counted at commit. */
static int s_resolved(rt_apply_t *self, const char *resolution)
{
    self->group_conflicts++;
    s_log_resolved(self, resolution);
    self->conflict_set = false;
    return s_queue_conflict_row(self, resolution);
}

/* Runs stand-in statement ch for change idx as a probe: *rows gets its row count, or
 * -1 for a duplicate key (the transaction is then aborted up to the last savepoint). */
static int s_probe(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch, uint32_t idx,
                   int64_t *rows)
{
    self->probe_rows = 0;
    self->probe_detail[0] = '\0';
    int err = rt__pipeline_send_stmt(self, rec, ch, idx, true);
    if (err == RT_OK)
        err = rt__pipeline_run(self, rec);
    *rows = self->probe_rows;
    return err;
}

static bool s_row_complete(const rt_change_t *ch)
{
    for (uint32_t i = 0; i < ch->nnew; i++)
        if (ch->new_[i].kind == RT_VAL_UNCHANGED)
            return false;
    return ch->new_ != NULL;
}

/* Applies change idx of rec one statement at a time, resolving conflicts the
 * apply_remote way. RT_ECONFLICT (self->conflict set) when one cannot be resolved. */
static int s_resolve_change(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    const rt_change_t *ch = &rec->changes[idx];
    char key[300];
    int64_t rows;
    int err;

    self->nops = 0;
    if (ch->op == 'T') {
        if ((err = rt__pipeline_send_change(self, rec, idx)) != RT_OK)
            return err;
        return rt__pipeline_run(self, rec);
    }
    rt__conflict_key(rec, ch, key, sizeof key);
    if (ch->op == 'I' && !key[0]) {
        if ((err = rt__pipeline_send_change(self, rec, idx)) != RT_OK ||
            (err = rt__pipeline_run(self, rec)) != RT_OK)
            return err; /* a duplicate key without an identity to resolve it by stops here */
        return RT_OK;
    }
    if (ch->op == 'I') {
        if ((err = rt__pipeline_send(self, RT__OP_MISC, "SAVEPOINT rt_change", 0, NULL)) != RT_OK ||
            (err = s_probe(self, rec, ch, idx, &rows)) != RT_OK)
            return err;
        if (rows >= 0)
            return RT_OK;
        /* The key exists: make that row the new one (UPDATE by the new row's key). */
        char found[256];
        snprintf(found, sizeof found, "%s", self->probe_detail);
        rt_change_t upd = {.op = 'U', .rel = ch->rel, .nnew = ch->nnew, .new_ = ch->new_};
        if ((err = rt__pipeline_send(self, RT__OP_MISC, "ROLLBACK TO SAVEPOINT rt_change", 0,
                                     NULL)) != RT_OK ||
            (err = s_probe(self, rec, &upd, idx, &rows)) != RT_OK)
            return err;
        if (rows == 1) {
            rt__conflict_note(self, rec, idx, 'I', "insert_exists",
                              "INSERT of %s: the row already exists on the replica (%s); "
                              "updated it to the remote row",
                              key[0] ? key : "a row", found);
            return s_resolved(self, "applied_remote");
        }
        rt__conflict_note(self, rec, idx, 'I', "insert_exists",
                          "INSERT into the replica failed: %s, and no row has the key %s to "
                          "update",
                          found, key[0] ? key : "(none)");
        return RT_ECONFLICT;
    }
    if ((err = s_probe(self, rec, ch, idx, &rows)) != RT_OK)
        return err;
    if (rows == 1)
        return RT_OK;
    char *table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    const char *t = table ? table : "?";
    if (ch->op == 'D' && rows == 0) {
        rt__conflict_note(self, rec, idx, 'D', "delete_missing",
                          "DELETE of %s matched 0 rows on the replica (the row is missing): %s; "
                          "nothing to delete",
                          t, key[0] ? key : "no key");
        free(table);
        return s_resolved(self, "skipped");
    }
    if (ch->op == 'U' && rows == 0 && s_row_complete(ch)) {
        rt_change_t ins = {.op = 'I', .rel = ch->rel, .nnew = ch->nnew, .new_ = ch->new_};
        if ((err = s_probe(self, rec, &ins, idx, &rows)) != RT_OK) {
            free(table);
            return err;
        }
        if (rows >= 0) {
            rt__conflict_note(self, rec, idx, 'U', "update_missing",
                              "UPDATE of %s matched 0 rows on the replica (the row is missing): "
                              "%s; inserted the remote row",
                              t, key[0] ? key : "no key");
            free(table);
            return s_resolved(self, "applied_remote");
        }
        rt__conflict_note(self, rec, idx, 'U', "update_missing",
                          "UPDATE of %s matched 0 rows on the replica (the row is missing): %s; "
                          "inserting the remote row failed too (%s)",
                          t, key[0] ? key : "no key", self->probe_detail);
    } else if (ch->op == 'U' && rows == 0) {
        rt__conflict_note(self, rec, idx, 'U', "update_missing",
                          "UPDATE of %s matched 0 rows on the replica (the row is missing): %s; "
                          "the remote row is incomplete (unchanged TOASTed values were not sent), "
                          "so it cannot be inserted",
                          t, key[0] ? key : "no key");
    } else {
        rt__conflict_note(self, rec, idx, ch->op,
                          ch->op == 'U' ? "update_multiple" : "delete_multiple",
                          "%s of %s matched %" PRId64 " rows on the replica instead of 1 (the "
                          "identity is not unique): %s",
                          rt__conflict_op_name(ch->op), t, rows, key[0] ? key : "no key");
    }
    free(table);
    return RT_ECONFLICT;
}

/* Applies rec change by change (after ROLLBACK TO SAVEPOINT rt_record). */
static int s_resolve_record(rt_apply_t *self, const rt_record_t *rec)
{
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        int err = s_resolve_change(self, rec, i);
        if (err != RT_OK)
            return err;
    }
    if (self->nops == 0)
        return RT_OK;
    return rt__pipeline_run(self, rec); /* the last rt.conflicts row */
}

/* Records the conflict that stopped applying, in a transaction of its own (not in
 * any open transaction: it was rolled back), once per seq, change and kind. */
static void s_record_stop(rt_apply_t *self)
{
    const rt__conflict_t *c = &self->conflict;
    self->conflict_set = false;
    rt__apply_error(self,
                    "conflict at seq %" PRIu64 " (change %" PRIu32 "): %s; applying stopped "
                    "(conflict policy %s)",
                    c->seq, c->change + 1, c->detail, rt_conflict_policy_name(self->policy));
    if (c->seq == self->stop_seq && c->change == self->stop_change &&
        strcmp(c->kind, self->stop_kind) == 0)
        return;
    self->stop_seq = c->seq;
    self->stop_change = c->change;
    snprintf(self->stop_kind, sizeof self->stop_kind, "%s", c->kind);
    self->conflicts++;
    if (!self->conn || self->in_txn)
        return;
    self->nops = 0;
    /* The session's origin must not advance with this commit: no xact_setup values. */
    int err = rt__pipeline_send(self, RT__OP_MISC, "BEGIN", 0, NULL);
    if (err == RT_OK)
        err = rt__pipeline_send(self, RT__OP_MISC, "SELECT pg_replication_origin_xact_reset()", 0,
                                NULL);
    if (err == RT_OK)
        err = s_queue_conflict_row(self, "stopped");
    if (err == RT_OK)
        err = rt__pipeline_send(self, RT__OP_COMMIT, "COMMIT", 0, NULL);
    if (err == RT_OK)
        err = rt__pipeline_run(self, NULL);
    if (err == RT_OK)
        return;
    rt_warn("could not record the conflict at seq %" PRIu64 " in rt.conflicts: %s", c->seq,
            rt_strerror(err));
    if (err == RT_EIO || err == RT_EAGAIN || PQstatus(self->conn) != CONNECTION_OK) {
        rt__apply_drop(self);
        return;
    }
    self->nops = 0;
    if (rt__pipeline_send(self, RT__OP_ROLLBACK, "ROLLBACK", 0, NULL) != RT_OK ||
        rt__pipeline_run(self, NULL) != RT_OK)
        rt__apply_drop(self);
}

int rt_apply_record(rt_apply_t *self, const rt_record_t *rec, size_t bytes)
{
    int err = RT_OK, sent = RT_OK;

    assert(self->conn && rec->seq == self->position + 1);
    bool first = (rec->flags & RT_REC_FIRST) != 0;
    if (first == self->mid_txn) {
        rt__apply_error(self,
                        "seq %" PRIu64 ": record flags %u %s; the outbox stream is inconsistent",
                        rec->seq, rec->flags,
                        first ? "start a transaction before the previous one ended"
                              : "continue a transaction that was never started");
        rt_apply_rollback(self);
        return self->conn ? RT_EPROTO : RT_EIO;
    }
    if (!first && rec->commit_lsn != self->txn_commit_lsn) {
        /* The publisher discarded the stored chunks of a transaction the source never
         * sent again, and stored another in their place: start over from the last
         * commit, which refetches the records now stored. */
        char a[32], b[32];
        rt__apply_error(self,
                        "seq %" PRIu64 ": record of the source transaction committed at %s "
                        "continues one committed at %s: the publisher replaced an incomplete "
                        "transaction; applying again from seq %" PRIu64,
                        rec->seq, rt_lsn_format(rec->commit_lsn, a, sizeof a),
                        rt_lsn_format(self->txn_commit_lsn, b, sizeof b), self->applied_seq + 1);
        rt_apply_rollback(self);
        return self->conn ? RT_EPROTO : RT_EIO;
    }
    if (first)
        self->txn_commit_lsn = rec->commit_lsn;
    bool remote = self->policy == RT_CONFLICT_APPLY_REMOTE || rec->seq <= self->remote_until;
    bool use_copy = !remote && rec->seq > self->nocopy_until;
    uint64_t resolved_before = self->group_conflicts;
    self->conflict_set = false;
    self->nops = 0;
    if (self->copying && !use_copy && (err = rt__copy_end(self)) != RT_OK)
        goto failed;
    if (!self->in_txn) {
        if ((err = rt__pipeline_send(self, RT__OP_BEGIN, "BEGIN", 0, NULL)) != RT_OK)
            return s_failed(self, err);
        self->in_txn = true;
        self->txn_start_ms = rt_mono_ms();
    }
    if (remote &&
        (err = rt__pipeline_send(self, RT__OP_MISC, "SAVEPOINT rt_record", 0, NULL)) != RT_OK)
        return s_failed(self, err);
    uint32_t copy_rel = UINT32_MAX; /* relation index of this record the open COPY writes */
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        const char *key = NULL;
        /* Within a record a run continues without looking up its relation again. */
        bool to_copy = use_copy && self->copying && ch->op == 'I' && ch->rel == copy_rel;
        if (!to_copy && use_copy && ch->op == 'I' && ch->rel < rec->nrels &&
            rec->rels[ch->rel].ncols > 0) {
            if (!(key = rt__copy_rel_key(self, rec, ch->rel))) {
                sent = RT_EPROTO;
                break;
            }
            if (self->copying && strcmp(self->copy_key, key) != 0 &&
                (err = rt__copy_end(self)) != RT_OK)
                goto failed;
            if (self->copying || rt__copy_wanted(self, rec, i, key)) {
                /* Everything queued before runs first, then this row goes to the COPY. */
                if (!self->copying && self->nops > 0 &&
                    (err = rt__pipeline_sync(self, rec)) != RT_OK)
                    goto failed;
                if (!self->copying && (err = rt__copy_start(self, rec, ch->rel, key)) != RT_OK)
                    goto failed;
                copy_rel = ch->rel;
                to_copy = true;
            }
        }
        if (to_copy) {
            if ((sent = rt__copy_row(self, rec, ch)) == RT_OK)
                continue;
            if (sent != RT_EPROTO && sent != RT_ENOMEM) {
                err = sent; /* the server failed the COPY: already told */
                goto failed;
            }
            break;
        }
        if (self->copying && (err = rt__copy_end(self)) != RT_OK)
            goto failed;
        if ((sent = rt__pipeline_send_change(self, rec, i)) != RT_OK)
            break;
        if ((sent = rt__pipeline_flush(self)) != RT_OK)
            break;
        rt__copy_run_note(self, ch->op == 'I' ? key : NULL);
    }
    if (sent == RT_EIO || sent == RT_EAGAIN)
        return s_failed(self, sent);
    if (!self->copying && self->nops > 0)
        err = rt__pipeline_sync(self, rec);
    if (err == RT_OK && sent != RT_OK) {
        if (sent == RT_EPROTO)
            rt__apply_error(self,
                            "seq %" PRIu64 ": a change does not fit its relation (row image or "
                            "parameter missing, or an unchanged value where one is needed)",
                            rec->seq);
        else
            rt__apply_error(self, "seq %" PRIu64 ": cannot apply record: %s", rec->seq,
                            rt_strerror(sent));
        err = sent;
    }
    if (err == RT_ECONFLICT && remote) {
        /* Again from the savepoint, one change at a time, resolving as it goes. */
        self->nops = 0;
        self->conflict_set = false;
        self->group_conflicts = resolved_before;
        err = rt__pipeline_send(self, RT__OP_MISC, "ROLLBACK TO SAVEPOINT rt_record", 0, NULL);
        if (err == RT_OK)
            err = rt__pipeline_run(self, NULL);
        if (err == RT_OK)
            err = s_resolve_record(self, rec);
    }
failed:
    if (err != RT_OK) {
        bool conflict = err == RT_ECONFLICT && self->conflict_set;
        err = s_failed(self, err);
        if (conflict && err == RT_ECONFLICT)
            s_record_stop(self);
        return err;
    }
    self->position = rec->seq;
    self->group_bytes += bytes;
    self->group_changes += rec->nchanges;
    self->mid_txn = (rec->flags & RT_REC_LAST) == 0;
    if (!self->mid_txn) {
        self->group_txns++;
        self->group_seq = rec->seq;
        self->group_ts = rec->commit_ts;
    }
    return RT_OK;
}

int rt_apply_commit(rt_apply_t *self)
{
    char lsn[32], ts[32];
    int err;

    assert(rt_apply_commit_ready(self));
    self->nops = 0;
    if (self->copying && (err = rt__copy_end(self)) != RT_OK)
        return s_failed(self, err);
    rt_lsn_format(self->group_seq, lsn, sizeof lsn);
    snprintf(ts, sizeof ts, "%" PRId64, rt_pg_to_unix_us(self->group_ts));
    const char *params[2] = {lsn, ts};
    /* A transaction without an xid writes no commit record and would not advance
     * the origin: give an all-empty group one. */
    if (self->group_changes == 0 &&
        (err = rt__pipeline_send(self, RT__OP_MISC, "SELECT pg_current_xact_id()", 0, NULL)) !=
            RT_OK)
        return s_failed(self, err);
    if ((err = rt__pipeline_send(self, RT__OP_MISC,
                                 "SELECT pg_replication_origin_xact_setup($1::pg_lsn, "
                                 "to_timestamp($2::float8 / 1e6))",
                                 2, params)) != RT_OK ||
        (err = rt__pipeline_send(self, RT__OP_COMMIT, "COMMIT", 0, NULL)) != RT_OK)
        return s_failed(self, err);
    if ((err = rt__pipeline_sync(self, NULL)) != RT_OK)
        return s_failed(self, err);
    self->applied_seq = self->group_seq;
    self->last_commit_ts = self->group_ts;
    self->last_applied_at = rt_pg_now_us();
    self->conflicts += self->group_conflicts;
    self->applied_txns += self->group_txns;
    self->applied_rows += self->group_changes;
    self->last_error[0] = '\0';
    s_reset_txn(self);
    return RT_OK;
}

int rt_apply_reset(rt_apply_t *self, uint64_t seq)
{
    PGresult *res = NULL;
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
                        rt__apply_line(PQerrorMessage(self->conn), line, sizeof line));
        goto cleanup;
    }
    rt_lsn_format(seq, lsn, sizeof lsn);
    if (!(res = s_setup_exec(self, "end the origin session",
                             "SELECT pg_replication_origin_session_reset()", 0, NULL, NULL)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "move the origin's progress",
                             "SELECT pg_replication_origin_advance($1, $2::pg_lsn)", 2,
                             self->origin, lsn)))
        goto cleanup;
    PQclear(res);
    if (!(res = s_setup_exec(self, "bind origin", "SELECT pg_replication_origin_session_setup($1)",
                             1, self->origin, NULL)))
        goto cleanup;
    PQclear(res);
    /* No leftover xact_setup position may be committed with a later transaction. */
    if (!(res = s_setup_exec(self, "clear the transaction origin",
                             "SELECT pg_replication_origin_xact_reset()", 0, NULL, NULL)))
        goto cleanup;
    PQclear(res);
    res = NULL;
    if (s_enter_pipeline(self) != RT_OK)
        goto cleanup;
    rt_info("origin %s of replica %s moved from seq %" PRIu64 " to seq %" PRIu64, self->origin,
            self->target, self->applied_seq, seq);
    self->applied_seq = seq;
    self->stop_seq = 0;
    s_reset_txn(self);
    err = RT_OK;
cleanup:
    PQclear(res);
    if (err != RT_OK)
        rt__apply_drop(self);
    return err;
}

uint64_t rt_apply_applied_txns(const rt_apply_t *self)
{
    return self->applied_txns;
}

uint64_t rt_apply_applied_rows(const rt_apply_t *self)
{
    return self->applied_rows;
}
