/* subscriber/apply.c - applies outbox records to the replica exactly once (libpq).
 *
 * Session: session_replication_role = replica, replication origin rt_<source> bound
 * to the session; its remote_lsn is the seq of the last LAST record applied.
 *
 * Each record is one pipeline segment on an explicitly open transaction:
 *   [BEGIN] (Parse rt_<n>)? Bind/Execute per change ... Sync
 * and its results are checked (UPDATE/DELETE must touch exactly one row) before
 * the next record is sent. A group of source transactions ends with
 *   [SELECT pg_current_xact_id()] SELECT pg_replication_origin_xact_setup(seq, ts) COMMIT Sync
 * so the data and the progress commit together. The connection is non-blocking
 * while sending so that a large segment never deadlocks against the results.
 */
#include "apply.h"

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

/* Longest origin name PostgreSQL accepts (MAX_RONAME_LEN). */
#define S_MAX_ORIGIN 512
/* Poll step while waiting on the replica socket, to notice a stop request. */
#define S_WAIT_STEP_MS 100
/* Connection attempts give up after this long. */
#define S_CONNECT_TIMEOUT_MS 10000

/* A prepared statement of one change shape. */
typedef struct {
    char name[24];  /* "rt_<n>" */
    rt_stmt_t stmt; /* SQL text and parameter map */
    bool prepared;  /* the server has it (or a Parse for it is in flight) */
} s_cached_t;

/* What a queued pipeline command was, to interpret its result. */
typedef enum {
    S_OP_BEGIN,
    S_OP_PREPARE,
    S_OP_EXEC,
    S_OP_MISC,
    S_OP_COMMIT,
    S_OP_ROLLBACK
} s_op_kind_t;

typedef struct {
    uint8_t kind;       /* s_op_kind_t */
    uint32_t change;    /* S_OP_PREPARE / S_OP_EXEC: index of the change */
    s_cached_t *cached; /* S_OP_PREPARE: the cache entry */
} s_op_t;

struct rt_apply_t {
    char *dsn;                     /* replica connection string */
    volatile sig_atomic_t *stop;   /* stop request flag */
    PGconn *conn;                  /* NULL when not connected */
    char *source;                  /* source name of the session's origin */
    char origin[S_MAX_ORIGIN + 1]; /* "rt_<source>" */
    char target[256];              /* "db@host:port" */
    zhashx_t *cache;               /* shape key -> s_cached_t */
    uint32_t next_stmt;            /* number of the next statement name */

    uint64_t applied_seq;   /* last committed LAST seq */
    uint64_t position;      /* last record applied in the open transaction */
    bool in_txn;            /* a replica transaction is open */
    bool mid_txn;           /* the last record applied did not end its source transaction */
    int64_t txn_start_ms;   /* when the open transaction began */
    uint32_t group_txns;    /* source transactions in the open transaction */
    size_t group_bytes;     /* record bytes in the open transaction */
    uint64_t group_changes; /* changes in the open transaction */
    uint64_t group_seq;     /* seq of the last LAST record in the open transaction */
    int64_t group_ts;       /* its commit time (PostgreSQL epoch µs) */

    s_op_t *ops; /* commands of the current segment */
    size_t nops, ops_cap;
    const char **params; /* parameter pointers of one statement */
    size_t params_cap;
    const rt_relation_t **trels; /* relations of one TRUNCATE */
    size_t trels_cap;
};

static void s_cached_destroy(void **item)
{
    s_cached_t *c = *item;
    if (c) {
        rt_stmt_clear(&c->stmt);
        free(c);
        *item = NULL;
    }
}

rt_apply_t *rt_apply_new(const char *dsn, volatile sig_atomic_t *stop)
{
    rt_apply_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup(dsn);
    self->stop = stop;
    self->cache = zhashx_new();
    if (!self->dsn || !self->cache) {
        rt_apply_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->cache, s_cached_destroy);
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
    free(self);
    *self_p = NULL;
}

static bool s_stopping(const rt_apply_t *self)
{
    return self->stop && *self->stop;
}

/* Copies a libpq message into buf on one line: line breaks and tabs become single
 * spaces, trailing space is dropped. Returns buf. */
static const char *s_line(const char *msg, char *buf, size_t size)
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
}

/* Drops the connection without any further command (the server rolls back). */
static void s_drop(rt_apply_t *self)
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
    s_drop(self);
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
    return self->group_txns >= RT_APPLY_GROUP_TXNS || self->group_bytes >= RT_APPLY_GROUP_BYTES;
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

/* Waits until fd is ready for events, in steps, checking the stop flag. Returns 0
 * when ready, RT_EAGAIN on stop, RT_EIO on a poll error, RT_EDB past deadline_ms
 * (a monotonic time, or 0 for none). */
static int s_wait_fd(rt_apply_t *self, int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        if (s_stopping(self))
            return RT_EAGAIN;
        int step = S_WAIT_STEP_MS;
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
        rt_error("cannot connect to the replica: %s",
                 s_line(PQerrorMessage(conn), line, sizeof line));
        goto cleanup;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            rt_error("cannot connect to the replica: %s",
                     s_line(PQerrorMessage(conn), line, sizeof line));
            goto cleanup;
        }
        int rc = s_wait_fd(self, PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                           deadline);
        if (rc == RT_EDB) {
            rt_error("cannot connect to the replica: no answer within %d s",
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
    rt_error(
        "replica session setup failed (%s): SQLSTATE %s: %s", what, state ? state : "?",
        s_line(res ? PQresultErrorMessage(res) : PQerrorMessage(self->conn), line, sizeof line));
    PQclear(res);
    return NULL;
}

/* Checks that a source name from the publisher can be part of an origin name. */
static bool s_source_ok(const char *source)
{
    size_t n = strlen(source);
    if (n == 0 || n + 3 > S_MAX_ORIGIN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)source[i] < 0x20 || source[i] == 0x7f)
            return false;
    return true;
}

int rt_apply_connect(rt_apply_t *self, const char *source, uint64_t *applied_seq)
{
    PGresult *res = NULL;
    int err;

    rt_apply_close(self);
    if (!s_source_ok(source)) {
        rt_error("source name from the publisher is not usable for a replication origin "
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
        rt_error("replica session setup failed: pg_replication_origin_progress returned %d rows",
                 PQntuples(res));
        goto cleanup;
    }
    if (!PQgetisnull(res, 0, 0) && rt_lsn_parse(PQgetvalue(res, 0, 0), &seq) != RT_OK) {
        rt_error("replica session setup failed: origin %s has progress '%s', not an LSN",
                 self->origin, PQgetvalue(res, 0, 0));
        goto cleanup;
    }
    PQclear(res);
    res = NULL;
    if (PQsetnonblocking(self->conn, 1) != 0 || PQenterPipelineMode(self->conn) != 1) {
        char line[512];
        rt_error("cannot enter pipeline mode on the replica: %s",
                 s_line(PQerrorMessage(self->conn), line, sizeof line));
        goto cleanup;
    }
    self->applied_seq = seq;
    s_reset_txn(self);
    *applied_seq = seq;
    err = RT_OK;
cleanup:
    PQclear(res);
    if (err != RT_OK)
        s_drop(self);
    return err;
}

/* ---------------------------------------------------------------------------------
 * Pipeline plumbing. */

static int s_push_op(rt_apply_t *self, s_op_kind_t kind, uint32_t change, s_cached_t *cached)
{
    if (self->nops == self->ops_cap) {
        size_t cap = self->ops_cap ? self->ops_cap * 2 : 64;
        s_op_t *ops = realloc(self->ops, cap * sizeof *ops);
        if (!ops)
            return RT_ENOMEM;
        self->ops = ops;
        self->ops_cap = cap;
    }
    self->ops[self->nops++] = (s_op_t){.kind = (uint8_t)kind, .change = change, .cached = cached};
    return RT_OK;
}

/* Sends what libpq buffered, reading input meanwhile so the server never blocks
 * on a full socket while we do. 0, RT_EIO or RT_EAGAIN. */
static int s_flush(rt_apply_t *self)
{
    for (;;) {
        int rc = PQflush(self->conn);
        if (rc == 0)
            return RT_OK;
        if (rc < 0)
            return RT_EIO;
        if (s_stopping(self))
            return RT_EAGAIN;
        struct pollfd p = {.fd = PQsocket(self->conn), .events = POLLIN | POLLOUT};
        if (poll(&p, 1, S_WAIT_STEP_MS) < 0 && errno != EINTR)
            return RT_EIO;
        if ((p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(self->conn))
            return RT_EIO;
    }
}

/* Returns the next result, waiting for it while watching the stop flag. Sets *err
 * to RT_EAGAIN on stop or RT_EIO if the connection failed; NULL results are
 * otherwise the end of one command's results. */
static PGresult *s_next_result(rt_apply_t *self, int *err)
{
    while (PQisBusy(self->conn)) {
        int rc = s_wait_fd(self, PQsocket(self->conn), POLLIN, 0);
        if (rc != 0) {
            *err = rc;
            return NULL;
        }
        if (!PQconsumeInput(self->conn))
            break; /* PQgetResult reports the failure */
    }
    return PQgetResult(self->conn);
}

/* Logs a failed result for the change at op (if any) of record seq and classifies it. */
static int s_failure(rt_apply_t *self, const rt_record_t *rec, const s_op_t *op,
                     const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char *table = NULL;
    const char *opname = "statement";
    uint64_t seq = rec ? rec->seq : self->group_seq;
    int err = RT_EDB;

    if (!state)
        state = "?";
    char line[512];
    msg = s_line(msg ? msg : PQresultErrorMessage(res), line, sizeof line);
    if (rec && op && (op->kind == S_OP_EXEC || op->kind == S_OP_PREPARE)) {
        const rt_change_t *ch = &rec->changes[op->change];
        opname = ch->op == 'I'   ? "INSERT"
                 : ch->op == 'U' ? "UPDATE"
                 : ch->op == 'D' ? "DELETE"
                                 : "TRUNCATE";
        if (ch->op != 'T')
            table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    }
    if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0) {
        err = RT_ENOTFOUND;
        if (strcmp(state, "42P01") == 0)
            rt_error("seq %" PRIu64 ": table %s is missing on the replica (%s): %s; "
                     "create it, then the subscriber retries",
                     seq, table ? table : "?", opname, msg);
        else
            rt_error("seq %" PRIu64 ": a column of table %s is missing on the replica: %s; "
                     "add it, then the subscriber retries",
                     seq, table ? table : "?", msg);
    } else if (strcmp(state, "23505") == 0) {
        err = RT_ECONFLICT;
        rt_error("conflict at seq %" PRIu64 ": %s into %s: the row already exists on the replica "
                 "(SQLSTATE %s: %s)",
                 seq, opname, table ? table : "?", state, msg);
    } else {
        rt_error("replica error at seq %" PRIu64 " (%s%s%s): SQLSTATE %s: %s", seq, opname,
                 table ? " of " : "", table ? table : "", state, msg);
    }
    free(table);
    return err;
}

/* Reads the results of the queued commands and the Sync. Returns 0 or the first
 * failure (logged); on RT_EIO/RT_EAGAIN the connection is unusable. */
static int s_read_results(rt_apply_t *self, const rt_record_t *rec)
{
    int err = RT_OK, io = RT_OK;

    for (size_t i = 0; i < self->nops; i++) {
        const s_op_t *op = &self->ops[i];
        PGresult *res = s_next_result(self, &io);
        if (!res) {
            if (io == RT_OK)
                io = RT_EIO;
            goto broken;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_FATAL_ERROR) {
            if (op->kind == S_OP_PREPARE)
                op->cached->prepared = false;
            if (err == RT_OK)
                err = s_failure(self, rec, op, res);
        } else if (st == PGRES_PIPELINE_ABORTED) {
            if (op->kind == S_OP_PREPARE)
                op->cached->prepared = false;
        } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            if (err == RT_OK) {
                rt_error("replica returned %s unexpectedly", PQresStatus(st));
                err = RT_EDB;
            }
        } else if (err == RT_OK && op->kind == S_OP_EXEC) {
            const rt_change_t *ch = &rec->changes[op->change];
            const char *n = PQcmdTuples(res);
            if ((ch->op == 'U' || ch->op == 'D') && strcmp(n, "1") != 0) {
                char *table =
                    rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
                rt_error("conflict at seq %" PRIu64 " (change %" PRIu32 " of %" PRIu32
                         "): %s of %s matched %s rows on the replica instead of 1 (%s)",
                         rec->seq, op->change + 1, rec->nchanges,
                         ch->op == 'U' ? "UPDATE" : "DELETE", table ? table : "?", n,
                         strcmp(n, "0") == 0 ? "the row is missing" : "the identity is not unique");
                free(table);
                err = RT_ECONFLICT;
            }
        } else if (err == RT_OK && op->kind == S_OP_COMMIT) {
            if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
                rt_error("replica did not commit at seq %" PRIu64 " (%s)", self->group_seq,
                         PQcmdStatus(res));
                err = RT_EDB;
            }
        }
        PQclear(res);
        /* The NULL that ends this command's results (more results are drained). */
        for (int extra = 0;; extra++) {
            res = s_next_result(self, &io);
            if (!res)
                break;
            PQclear(res);
            if (extra > 16) {
                io = RT_EIO;
                goto broken;
            }
        }
        if (io != RT_OK)
            goto broken;
    }
    PGresult *res = s_next_result(self, &io);
    if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        PQclear(res);
        if (io == RT_OK)
            io = RT_EIO;
        goto broken;
    }
    PQclear(res);
    self->nops = 0;
    return err;
broken:
    self->nops = 0;
    return io;
}

/* Ends the segment with a Sync, sends it and reads all results. */
static int s_sync(rt_apply_t *self, const rt_record_t *rec)
{
    if (PQpipelineSync(self->conn) != 1) {
        self->nops = 0;
        return RT_EIO;
    }
    int err = s_flush(self);
    if (err != RT_OK) {
        self->nops = 0;
        return err;
    }
    return s_read_results(self, rec);
}

/* Handles a failed segment: drops a broken connection, else rolls back. */
static int s_failed(rt_apply_t *self, int err)
{
    if (err == RT_EAGAIN) {
        s_drop(self);
        return err;
    }
    if (err == RT_EIO || !self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        char line[512];
        rt_error("lost connection to the replica %s: %s", self->target,
                 self->conn ? s_line(PQerrorMessage(self->conn), line, sizeof line) : "closed");
        s_drop(self);
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
    int err = RT_ENOMEM;
    if (PQsendQueryParams(self->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) == 1 &&
        s_push_op(self, S_OP_ROLLBACK, 0, NULL) == RT_OK)
        err = s_sync(self, NULL);
    else if (PQstatus(self->conn) != CONNECTION_OK)
        err = RT_EIO;
    if (err != RT_OK) {
        if (err != RT_EAGAIN) {
            char line[512];
            rt_error("lost connection to the replica %s during rollback: %s", self->target,
                     s_line(PQerrorMessage(self->conn), line, sizeof line));
        }
        s_drop(self);
        return;
    }
    s_reset_txn(self);
}

/* ---------------------------------------------------------------------------------
 * Sending changes. */

static int s_send_simple(rt_apply_t *self, s_op_kind_t kind, const char *sql, int n,
                         const char *const *params)
{
    if (PQsendQueryParams(self->conn, sql, n, NULL, params, NULL, NULL, 0) != 1)
        return RT_EIO;
    return s_push_op(self, kind, 0, NULL);
}

static int s_send_truncate(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    const rt_change_t *ch = &rec->changes[idx];
    char *sql = NULL;
    int err;

    if (ch->ntrunc == 0)
        return RT_OK; /* nothing to do */
    if (ch->ntrunc > self->trels_cap) {
        const rt_relation_t **r = realloc(self->trels, ch->ntrunc * sizeof *r);
        if (!r)
            return RT_ENOMEM;
        self->trels = r;
        self->trels_cap = ch->ntrunc;
    }
    for (uint32_t i = 0; i < ch->ntrunc; i++) {
        if (ch->trunc_rels[i] >= rec->nrels)
            return RT_EPROTO;
        self->trels[i] = &rec->rels[ch->trunc_rels[i]];
    }
    if ((err = rt_sqlgen_truncate(self->trels, ch->ntrunc, ch->trunc_flags, &sql)) != RT_OK)
        return err;
    if (PQsendQueryParams(self->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
        err = RT_EIO;
    else
        err = s_push_op(self, S_OP_EXEC, idx, NULL);
    free(sql);
    return err;
}

/* Returns the cached statement for the change's shape, creating it (and queueing
 * its Parse) when new or when its last Parse did not succeed. */
static int s_statement(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, s_cached_t **out)
{
    const rt_change_t *ch = &rec->changes[idx];
    const rt_relation_t *rel = &rec->rels[ch->rel];
    char key[128];
    int err;

    if (rt_sqlgen_shape_key(rel, ch->op, ch->old_kind, ch->new_, key, sizeof key) < 0)
        return RT_EPROTO;
    s_cached_t *c = zhashx_lookup(self->cache, key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return RT_ENOMEM;
        if ((err = rt_sqlgen_change(rel, ch->op, ch->old_kind, ch->new_, &c->stmt)) != RT_OK) {
            free(c);
            return err == RT_ENOMEM ? err : RT_EPROTO;
        }
        snprintf(c->name, sizeof c->name, "rt_%" PRIu32, self->next_stmt++);
        if (zhashx_insert(self->cache, key, c) != 0) {
            rt_stmt_clear(&c->stmt);
            free(c);
            return RT_ENOMEM;
        }
    }
    if (!c->prepared) {
        if (PQsendPrepare(self->conn, c->name, c->stmt.sql, 0, NULL) != 1)
            return RT_EIO;
        if ((err = s_push_op(self, S_OP_PREPARE, idx, c)) != RT_OK)
            return err;
        c->prepared = true;
    }
    *out = c;
    return RT_OK;
}

static int s_send_change(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    const rt_change_t *ch = &rec->changes[idx];
    s_cached_t *c;
    int err;

    if (ch->op == 'T')
        return s_send_truncate(self, rec, idx);
    if (ch->rel >= rec->nrels)
        return RT_EPROTO;
    uint32_t ncols = rec->rels[ch->rel].ncols;
    if ((ch->op != 'D' && (!ch->new_ || ch->nnew != ncols)) ||
        (ch->old_kind && (!ch->old || ch->nold != ncols)))
        return RT_EPROTO;
    if ((err = s_statement(self, rec, idx, &c)) != RT_OK)
        return err;
    if (c->stmt.nparams > self->params_cap) {
        const char **p = realloc(self->params, c->stmt.nparams * sizeof *p);
        if (!p)
            return RT_ENOMEM;
        self->params = p;
        self->params_cap = c->stmt.nparams;
    }
    for (uint32_t i = 0; i < c->stmt.nparams; i++) {
        const rt_param_t *pm = &c->stmt.params[i];
        const rt_value_t *img = pm->from_old ? ch->old : ch->new_;
        uint32_t n = pm->from_old ? ch->nold : ch->nnew;
        if (!img || pm->col >= n || img[pm->col].kind == RT_VAL_UNCHANGED)
            return RT_EPROTO;
        self->params[i] = img[pm->col].kind == RT_VAL_NULL ? NULL : img[pm->col].data;
    }
    if (PQsendQueryPrepared(self->conn, c->name, (int)c->stmt.nparams, self->params, NULL, NULL,
                            0) != 1)
        return RT_EIO;
    return s_push_op(self, S_OP_EXEC, idx, NULL);
}

int rt_apply_record(rt_apply_t *self, const rt_record_t *rec, size_t bytes)
{
    int err = RT_OK, sent = RT_OK;

    assert(self->conn && rec->seq == self->position + 1);
    bool first = (rec->flags & RT_REC_FIRST) != 0;
    if (first == self->mid_txn) {
        rt_error("seq %" PRIu64 ": record flags %u %s; the outbox stream is inconsistent", rec->seq,
                 rec->flags,
                 first ? "start a transaction before the previous one ended"
                       : "continue a transaction that was never started");
        rt_apply_rollback(self);
        return self->conn ? RT_EPROTO : RT_EIO;
    }
    self->nops = 0;
    if (!self->in_txn) {
        if ((err = s_send_simple(self, S_OP_BEGIN, "BEGIN", 0, NULL)) != RT_OK)
            return s_failed(self, err);
        self->in_txn = true;
        self->txn_start_ms = rt_mono_ms();
    }
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        if ((sent = s_send_change(self, rec, i)) != RT_OK)
            break;
        if ((sent = s_flush(self)) != RT_OK)
            break;
    }
    if (sent == RT_EIO || sent == RT_EAGAIN)
        return s_failed(self, sent);
    err = s_sync(self, rec);
    if (err == RT_OK && sent != RT_OK) {
        if (sent == RT_EPROTO)
            rt_error("seq %" PRIu64 ": a change does not fit its relation (row image or "
                     "parameter missing, or an unchanged value where one is needed)",
                     rec->seq);
        else
            rt_error("seq %" PRIu64 ": cannot apply record: %s", rec->seq, rt_strerror(sent));
        err = sent;
    }
    if (err != RT_OK)
        return s_failed(self, err);
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
    rt_lsn_format(self->group_seq, lsn, sizeof lsn);
    snprintf(ts, sizeof ts, "%" PRId64, rt_pg_to_unix_us(self->group_ts));
    const char *params[2] = {lsn, ts};
    /* A transaction without an xid writes no commit record and would not advance
     * the origin: give an all-empty group one. */
    if (self->group_changes == 0 &&
        (err = s_send_simple(self, S_OP_MISC, "SELECT pg_current_xact_id()", 0, NULL)) != RT_OK)
        return s_failed(self, err);
    if ((err = s_send_simple(self, S_OP_MISC,
                             "SELECT pg_replication_origin_xact_setup($1::pg_lsn, "
                             "to_timestamp($2::float8 / 1e6))",
                             2, params)) != RT_OK ||
        (err = s_send_simple(self, S_OP_COMMIT, "COMMIT", 0, NULL)) != RT_OK)
        return s_failed(self, err);
    if ((err = s_sync(self, NULL)) != RT_OK)
        return s_failed(self, err);
    self->applied_seq = self->group_seq;
    s_reset_txn(self);
    return RT_OK;
}
