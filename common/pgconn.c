/* common/pgconn.c - the one way rt connects to PostgreSQL, runs set-up queries, quotes
 * names and prints connection strings (never with their password). */
#include "pgconn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

#define S_DEFAULT_TIMEOUT_MS 10000
#define S_WAIT_STEP_MS 100 /* the stop flag is checked this often while connecting */

const char *rt_pg_error_line(const char *msg, char *buf, size_t size)
{
    size_t n = 0;
    bool space = false;
    if (size == 0)
        return buf;
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

/* Appends value to b as a conninfo value: bare when it is a plain word, else quoted. */
static void s_put_value(rt_buf_t *b, const char *v)
{
    bool plain = *v != '\0';
    for (const char *p = v; *p && plain; p++)
        if (*p == ' ' || *p == '\'' || *p == '\\' || *p == '\t' || *p == '\n')
            plain = false;
    if (plain) {
        rt_buf_puts(b, v);
        return;
    }
    rt_buf_putc(b, '\'');
    for (const char *p = v; *p; p++) {
        if (*p == '\'' || *p == '\\')
            rt_buf_putc(b, '\\');
        rt_buf_putc(b, *p);
    }
    rt_buf_putc(b, '\'');
}

char *rt_pg_dsn_safe(const char *dsn)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", &perr);
    PQfreemem(perr);
    if (!opts)
        return strdup("(unparsable connection string)");
    rt_buf_t b;
    rt_buf_init(&b);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "password") == 0)
            continue;
        if (b.len)
            rt_buf_putc(&b, ' ');
        rt_buf_puts(&b, o->keyword);
        rt_buf_putc(&b, '=');
        s_put_value(&b, o->val);
    }
    PQconninfoFree(opts);
    char *safe = rt_buf_error(&b) == 0 ? strdup(rt_buf_str(&b)) : NULL;
    rt_buf_free(&b);
    return safe;
}

/* Logs "cannot connect to WHAT (DSN): why" and copies it into err. */
static void s_connect_failed(const rt_pg_opts_t *o, const char *why, char *err, size_t err_size)
{
    char *safe = rt_pg_dsn_safe(o->dsn);
    char line[RT_PG_ERR_MAX + 256];
    snprintf(line, sizeof line, "cannot connect to %s (%s): %s", o->what ? o->what : "PostgreSQL",
             safe ? safe : "?", why);
    free(safe);
    rt_error("%s", line);
    if (err && err_size)
        snprintf(err, err_size, "%s", line);
}

int rt_pg_wait_fd(int fd, short events, int64_t deadline_ms, volatile sig_atomic_t *stop)
{
    for (;;) {
        if (stop && *stop)
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

/* Settings of each rt session, ahead of the connection's own options (which may set
 * them otherwise: the later one wins). A role's or database's statement_timeout,
 * lock_timeout or idle_in_transaction_session_timeout would cancel rt's long COPYs, its
 * waits for a row an application holds and the snapshot an initial copy keeps open, and
 * retrying would meet them again; default_transaction_read_only would refuse every
 * write of the apply, another default isolation change what its reads see. */
#define S_SESSION_OPTIONS                                                                          \
    "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 "           \
    "-c default_transaction_read_only=off -c default_transaction_isolation=read\\ committed"

/* S_SESSION_OPTIONS, then extra (NULL: none), then the options of dsn (or of PGOPTIONS
 * when it has none). NULL when out of memory or dsn does not parse (libpq then tells what
 * is wrong with it). */
static char *s_session_options(const char *dsn, const char *extra)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (!opts)
        return NULL;
    const char *theirs = NULL;
    for (PQconninfoOption *c = opts; c->keyword; c++)
        if (strcmp(c->keyword, "options") == 0 && c->val && c->val[0])
            theirs = c->val;
    if (!theirs)
        theirs = getenv("PGOPTIONS");
    const char *ours = extra ? extra : "";
    size_t n = sizeof S_SESSION_OPTIONS + strlen(ours) + 1 + (theirs ? strlen(theirs) + 1 : 0);
    char *all = malloc(n);
    if (all)
        snprintf(all, n, "%s%s%s%s%s", S_SESSION_OPTIONS, ours[0] ? " " : "", ours,
                 theirs ? " " : "", theirs ? theirs : "");
    PQconninfoFree(opts);
    return all;
}

bool rt_pg_standby(PGconn *conn, const char *what, const char *flag, char *msg, size_t msg_size)
{
    PGresult *res = PQexec(conn, "SELECT pg_catalog.pg_is_in_recovery()");
    bool standby = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                   strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (standby)
        snprintf(msg, msg_size,
                 "%s %s@%s:%s is a standby in recovery, which takes no writes: %s names the "
                 "primary of that server (rt tries again, and writes once it is promoted)",
                 what, PQdb(conn), PQhost(conn), PQport(conn), flag);
    return standby;
}

PGconn *rt_pg_connect_start(const rt_pg_opts_t *o)
{
    /* expand_dbname = 1: the dbname value is a whole connection string; the keywords
     * after it override what it says. */
    const char *keys[5] = {"dbname", NULL, NULL, NULL, NULL};
    const char *vals[5] = {o->dsn, NULL, NULL, NULL, NULL};
    int k = 1;
    if (o->application_name) {
        keys[k] = "application_name";
        vals[k++] = o->application_name;
    }
    if (o->replication) {
        keys[k] = "replication";
        vals[k++] = "database";
    }
    char *options = s_session_options(o->dsn, o->options);
    if (options) {
        keys[k] = "options";
        vals[k++] = options;
    }
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    free(options);
    return conn;
}

int rt_pg_connect(const rt_pg_opts_t *o, PGconn **out, char *err, size_t err_size)
{
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : S_DEFAULT_TIMEOUT_MS;
    int64_t deadline = rt_mono_ms() + timeout;
    char line[RT_PG_ERR_MAX];
    int rc = RT_EDB;

    *out = NULL;
    PGconn *conn = rt_pg_connect_start(o);
    if (!conn)
        return RT_ENOMEM;
    PostgresPollingStatusType st =
        PQstatus(conn) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            s_connect_failed(o, rt_pg_error_line(PQerrorMessage(conn), line, sizeof line), err,
                             err_size);
            goto cleanup;
        }
        int w = rt_pg_wait_fd(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                              deadline, o->stop);
        if (w == RT_EDB) {
            snprintf(line, sizeof line, "no answer within %d ms", timeout);
            s_connect_failed(o, line, err, err_size);
            goto cleanup;
        }
        if (w != 0) {
            if (w == RT_EIO)
                s_connect_failed(o, strerror(errno), err, err_size);
            rc = w;
            goto cleanup;
        }
        st = PQconnectPoll(conn);
    }
    *out = conn;
    conn = NULL;
    rc = RT_OK;
cleanup:
    if (conn)
        PQfinish(conn);
    return rc;
}

/* Copies "CONTEXT: WHAT failed: SQLSTATE X: message" for a failed result (NULL: the
 * connection's error) into err, and logs it when log is set. */
static void s_exec_failed(PGconn *conn, const PGresult *res, const char *context, const char *what,
                          char *err, size_t err_size, bool log)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[RT_PG_ERR_MAX];
    rt_pg_error_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), msg, sizeof msg);
    if (!msg[0])
        rt_pg_error_line(PQerrorMessage(conn), msg, sizeof msg);
    char line[RT_PG_ERR_MAX + 256];
    snprintf(line, sizeof line, "%s: %s failed: SQLSTATE %s: %s", context, what,
             state ? state : "?", msg);
    if (log)
        rt_error("%s", line);
    if (err && err_size)
        snprintf(err, err_size, "%s", line);
}

static PGresult *s_exec(PGconn *conn, const char *context, const char *what, const char *sql,
                        int nparams, const char *const *params, char *err, size_t err_size,
                        bool log)
{
    PGresult *res =
        nparams ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    s_exec_failed(conn, res, context, what, err, err_size, log);
    PQclear(res);
    return NULL;
}

PGresult *rt_pg_exec(PGconn *conn, const char *context, const char *what, const char *sql,
                     int nparams, const char *const *params, char *err, size_t err_size)
{
    return s_exec(conn, context, what, sql, nparams, params, err, err_size, true);
}

PGresult *rt_pg_exec_quiet(PGconn *conn, const char *context, const char *what, const char *sql,
                           int nparams, const char *const *params, char *err, size_t err_size)
{
    return s_exec(conn, context, what, sql, nparams, params, err, err_size, false);
}

int rt_pg_exec_wait(PGconn *conn, const rt_pg_waiter_t *waiter, const char *context,
                    const char *what, const char *sql, int nparams, const char *const *params,
                    PGresult **res, char *err, size_t err_size)
{
    *res = NULL;
    int sent = nparams ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                       : PQsendQuery(conn, sql);
    if (!sent) {
        s_exec_failed(conn, NULL, context, what, err, err_size, true);
        return RT_EDB;
    }
    return rt_pg_collect(conn, waiter, context, what, res, err, err_size);
}

int rt_pg_collect(PGconn *conn, const rt_pg_waiter_t *waiter, const char *context, const char *what,
                  PGresult **res, char *err, size_t err_size)
{
    PGresult *last = NULL, *failed = NULL;
    *res = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            int rc = waiter->fn(waiter->arg, PQsocket(conn));
            if (rc < 0) {
                PQclear(last);
                PQclear(failed);
                return rc;
            }
            if (!PQconsumeInput(conn))
                break; /* the connection broke: PQgetResult says so */
        }
        PGresult *r = PQgetResult(conn);
        if (!r)
            break;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_OUT || st == PGRES_COPY_IN) {
            PQclear(last);
            PQclear(failed);
            *res = r;
            return RT_OK;
        }
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !failed) {
            failed = r; /* the first error; the statements after it did not run */
            continue;
        }
        PQclear(last);
        last = r;
        if (PQstatus(conn) == CONNECTION_BAD)
            break;
    }
    if (failed || !last || PQstatus(conn) == CONNECTION_BAD) {
        s_exec_failed(conn, failed, context, what, err, err_size, true);
        PQclear(last);
        PQclear(failed);
        return RT_EDB;
    }
    *res = last;
    return RT_OK;
}

/* Copies libpq's escaped string into memory the caller frees with free(). */
static char *s_escaped(PGconn *conn, char *escaped, const char *kind, const char *text)
{
    if (!escaped) {
        char line[RT_PG_ERR_MAX];
        rt_error("cannot quote %s '%s': %s", kind, text,
                 rt_pg_error_line(PQerrorMessage(conn), line, sizeof line));
        return NULL;
    }
    char *copy = strdup(escaped);
    PQfreemem(escaped);
    return copy;
}

char *rt_pg_ident(PGconn *conn, const char *name)
{
    return s_escaped(conn, PQescapeIdentifier(conn, name, strlen(name)), "identifier", name);
}

char *rt_pg_literal(PGconn *conn, const char *text)
{
    return s_escaped(conn, PQescapeLiteral(conn, text, strlen(text)), "literal", text);
}

int rt_pg_failure(PGconn *conn)
{
    return PQstatus(conn) == CONNECTION_OK ? RT_EDB : RT_EIO;
}

int rt_pg_run(PGconn *conn, const char *context, const char *what, const char *sql, int nparams,
              const char *const *params, char *err, size_t err_size)
{
    PGresult *res = rt_pg_exec(conn, context, what, sql, nparams, params, err, err_size);
    if (!res)
        return rt_pg_failure(conn);
    PQclear(res);
    return RT_OK;
}
