/* common/pgconn.h - the one way rt connects to PostgreSQL, runs set-up queries, quotes
 * names and prints connection strings (never with their password). */
#ifndef RT_PGCONN_H
#define RT_PGCONN_H

#include <libpq-fe.h>
#include <signal.h>

#include "rt.h"

/* Longest error line kept from libpq (longer ones are cut). */
#define RT_PG_ERR_MAX 512

typedef struct {
    const char *dsn;              /* connection string or URI, as the user gave it */
    const char *what;             /* names the server in messages: "the source", "the replica" */
    const char *application_name; /* overrides the DSN's (NULL: keep it) */
    bool replication;             /* replication=database: a walsender connection */
    const char *options;          /* more settings ("-c name=value ..."), after rt's own
                                     and before the DSN's (NULL: none) */
    int timeout_ms;               /* give up connecting after this long (0: 10 s) */
    volatile sig_atomic_t *stop;  /* checked while waiting: set, the connect gives up
                                     with RT_EAGAIN (NULL: never) */
} rt_pg_opts_t;

/* Connects without blocking the caller past timeout_ms or a stop request: starts with
 * PQconnectStartParams and polls the socket. On success *conn is the open connection
 * (the caller PQfinish'es it). On failure *conn is NULL and the error is logged once,
 * "cannot connect to WHAT (DSN without password): libpq's message", and copied into err
 * (err_size bytes, may be NULL) for a caller that reports it elsewhere.
 * Returns RT_OK; RT_EDB when the server refused or did not answer in time; RT_EAGAIN
 * when *stop was set (nothing logged); RT_ENOMEM. */
int rt_pg_connect(const rt_pg_opts_t *opts, PGconn **conn, char *err, size_t err_size) RT_WUR;

/* Whether the server of conn is a standby in recovery (pg_is_in_recovery()); false also
 * when the question fails (the session's next statement then tells why). When it is,
 * msg (msg_size bytes) gets the line that says so, naming the server as what (e.g. "the
 * replica") and the flag that chose it. */
bool rt_pg_standby(PGconn *conn, const char *what, const char *flag, char *msg, size_t msg_size);

/* Starts connecting without waiting at all (PQconnectStartParams with the DSN,
 * application_name and replication of opts, and rt's session settings ahead of the
 * DSN's options: no statement, lock or idle-in-transaction timeout, read-write, read
 * committed; timeout_ms and stop are not used): for a
 * caller that drives PQconnectPoll from its own event loop, calling it only once
 * PQsocket is ready for what the previous call asked, and keeps its own deadline. Only
 * a host name to resolve may block, as in libpq. Returns the connection (the caller
 * PQfinish'es it; check PQstatus for CONNECTION_BAD first), NULL when out of memory.
 * Logs nothing. */
PGconn *rt_pg_connect_start(const rt_pg_opts_t *opts);

/* Waits until fd (a connection's PQsocket) is ready for events (POLLIN, POLLOUT), in
 * steps of 100 ms checking *stop (may be NULL). Returns 0 when ready, RT_EAGAIN once
 * *stop is set, RT_EDB past deadline_ms (a rt_mono_ms time, or 0 for none), RT_EIO
 * when poll fails. */
int rt_pg_wait_fd(int fd, short events, int64_t deadline_ms, volatile sig_atomic_t *stop) RT_WUR;

/* Runs sql (simple protocol when nparams is 0, else with text parameters) and returns
 * its result when it is tuples or command ok. Otherwise clears it, logs once
 * "CONTEXT: WHAT failed: SQLSTATE X: message" (context e.g. "source", "replica"; what
 * e.g. "creating the publication"), copies that line into err (may be NULL) and
 * returns NULL. The caller PQclear's a non-NULL result. */
PGresult *rt_pg_exec(PGconn *conn, const char *context, const char *what, const char *sql,
                     int nparams, const char *const *params, char *err, size_t err_size);

/* rt_pg_exec that logs nothing: for a caller that tells the failure (the line in err)
 * itself, at a level of its own. */
PGresult *rt_pg_exec_quiet(PGconn *conn, const char *context, const char *what, const char *sql,
                           int nparams, const char *const *params, char *err, size_t err_size);

/* rt_pg_exec for a statement whose result the caller does not need: RT_OK; RT_EDB when it
 * failed on a connection that is still good, RT_EIO when the connection is lost. */
int rt_pg_run(PGconn *conn, const char *context, const char *what, const char *sql, int nparams,
              const char *const *params, char *err, size_t err_size) RT_WUR;

/* After a failure on conn: RT_EDB while the connection is good, RT_EIO once it is lost. */
int rt_pg_failure(PGconn *conn);

/* How rt_pg_exec_wait and rt_pg_collect wait for the server: fn returns 0 once fd (the
 * connection's PQsocket) is readable, or a negative RT_E* code to give up (an actor's
 * pipe said stop, say). fn may watch other things meanwhile; that is its purpose. */
typedef struct {
    int (*fn)(void *arg, int fd);
    void *arg;
} rt_pg_waiter_t;

/* Sends sql (simple protocol when nparams is 0, else with text parameters) and collects
 * its results with rt_pg_collect, never blocking in libpq for an answer: for threads that
 * must keep listening to something else while the server works. */
int rt_pg_exec_wait(PGconn *conn, const rt_pg_waiter_t *waiter, const char *context,
                    const char *what, const char *sql, int nparams, const char *const *params,
                    PGresult **res, char *err, size_t err_size) RT_WUR;

/* Collects the results of the query sent last, waiting through waiter. Several statements
 * give several results: *res is the last one (the caller PQclear's it). A COPY's result
 * (PGRES_COPY_OUT or PGRES_COPY_IN) is returned as soon as it arrives, the connection
 * then in the COPY state. Returns RT_OK; RT_EDB when a statement failed or the connection
 * broke, logged once and copied into err as rt_pg_exec does; or the waiter's code when
 * it gave up (nothing logged; the connection is then unusable: PQfinish it). *res is NULL
 * unless RT_OK. */
int rt_pg_collect(PGconn *conn, const rt_pg_waiter_t *waiter, const char *context, const char *what,
                  PGresult **res, char *err, size_t err_size) RT_WUR;

/* libpq's last error on one line: line breaks and runs of blanks become one space,
 * trailing blanks dropped; written into buf (size bytes), which is returned. */
const char *rt_pg_error_line(const char *msg, char *buf, size_t size);

/* The connection string with its password (keyword or URI) left out, as
 * "key=value ..." (values quoted when needed), malloc'd: the caller frees it.
 * A string libpq cannot parse gives "(unparsable connection string)", never the input.
 * NULL only when out of memory. */
char *rt_pg_dsn_safe(const char *dsn);

/* name quoted as an SQL identifier ("a""b") or text as a literal ('it''s'), with
 * libpq's escaping for conn's encoding (PQescapeIdentifier, PQescapeLiteral; a
 * replication connection works too). malloc'd: the caller frees it. NULL on failure
 * (invalid for the encoding, or out of memory), logged. */
char *rt_pg_ident(PGconn *conn, const char *name);
char *rt_pg_literal(PGconn *conn, const char *text);

#endif
