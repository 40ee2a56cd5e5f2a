/* publisher/slot_stats.c - the publisher's slot as the source sees it, measured on a
 * regular connection driven by the event loop without ever waiting for the source.
 *
 *   DOWN --(retry time)--> CONNECTING --(PQconnectPoll OK)--> IDLE --(interval)--> QUERY
 *     ^                        |                               ^                     |
 *     +----- failure, or no answer in time (back-off) ---------+------ answer -------+
 *
 * PQconnectPoll is called only once the socket is ready for what it asked (a poll with no
 * timeout), the query goes out with PQsendQueryParams on a non-blocking connection and
 * its answer is collected with PQconsumeInput and PQisBusy, so no step blocks. */
#include "slot_stats.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

#define S_RETRY_MIN_MS 1000  /* first wait after a failure */
#define S_RETRY_MAX_MS 30000 /* longest wait between attempts */
#define S_CONNECT_MS 10000   /* give up a connection attempt after this long */
#define S_ANSWER_MS 10000    /* give up a query (and its connection) after this long */
#define S_STALE_MS (3 * RT_SLOT_STATS_INTERVAL_MS + S_ANSWER_MS) /* older figures: unknown */

/* One row for the slot: retained WAL, lag in bytes, whether a WAL sender holds it, whether
 * that sender's details are hidden from this role (pg_stat_replication shows them only to
 * superusers and pg_read_all_stats), and its flush lag in ms (NULL once caught up). */
static const char *const s_sql =
    "SELECT (pg_catalog.pg_current_wal_lsn() - s.restart_lsn)::int8, "
    "(pg_catalog.pg_current_wal_lsn() - s.confirmed_flush_lsn)::int8, "
    "r.pid IS NOT NULL, r.pid IS NOT NULL AND r.state IS NULL, "
    "(EXTRACT(epoch FROM r.flush_lag) * 1000)::int8 "
    "FROM pg_catalog.pg_replication_slots s "
    "LEFT JOIN pg_catalog.pg_stat_replication r ON r.pid = s.active_pid "
    "WHERE s.slot_name = $1";

typedef enum { S_DOWN, S_CONNECTING, S_IDLE, S_QUERY } s_state_t;

struct rt_slot_stats_t {
    char *dsn;                         /* the source, as given */
    char *slot;                        /* the slot's name */
    PGconn *conn;                      /* NULL while down */
    s_state_t state;                   /* where the connection stands */
    PostgresPollingStatusType polling; /* CONNECTING: what PQconnectPoll waits for */
    int64_t deadline_ms;               /* CONNECTING, QUERY: give up at this time */
    int64_t next_ms;                   /* DOWN: next attempt; IDLE: next query */
    int64_t retry_ms;                  /* the wait after the next failure */
    bool failing;                      /* a failure was logged: say when it works again */
    bool answered;                     /* QUERY: the answer's rows are in */
    char why[RT_PG_ERR_MAX];           /* QUERY: its error, "" if none */
    bool hidden_logged;                /* said once that the WAL sender's lag is hidden */
    rt_slot_figures_t figures;         /* the last measurement */
    int64_t measured_ms;               /* when it arrived, 0: never */
};

static const rt_slot_figures_t s_unknown = {-1, -1, -1};

rt_slot_stats_t *rt_slot_stats_new(const char *dsn, const char *slot)
{
    rt_slot_stats_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup(dsn);
    self->slot = strdup(slot);
    if (!self->dsn || !self->slot) {
        rt_slot_stats_destroy(&self);
        return NULL;
    }
    self->state = S_DOWN;
    self->retry_ms = S_RETRY_MIN_MS;
    self->figures = s_unknown;
    return self;
}

void rt_slot_stats_destroy(rt_slot_stats_t **self_p)
{
    rt_slot_stats_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        PQfinish(self->conn);
    free(self->dsn);
    free(self->slot);
    free(self);
    *self_p = NULL;
}

/* Drops the connection after a failure (logged once until a measurement succeeds) and
 * schedules the next attempt, each wait twice the last up to S_RETRY_MAX_MS. */
static void s_down(rt_slot_stats_t *self, const char *why)
{
    if (!self->failing)
        rt_warn("source: reading the figures of slot %s failed (%s); retrying, every %d s at "
                "most",
                self->slot, why, S_RETRY_MAX_MS / 1000);
    self->failing = true;
    if (self->conn)
        PQfinish(self->conn);
    self->conn = NULL;
    self->state = S_DOWN;
    self->figures = s_unknown;
    self->measured_ms = 0;
    self->next_ms = rt_mono_ms() + self->retry_ms;
    self->retry_ms = self->retry_ms * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : self->retry_ms * 2;
}

/* libpq's last error on conn, on one line, into buf. */
static const char *s_conn_error(const rt_slot_stats_t *self, char *buf, size_t size)
{
    return rt_pg_error_line(self->conn ? PQerrorMessage(self->conn) : "out of memory", buf, size);
}

/* A bigint column: -1 when NULL or not a number, 0 when negative. */
static int64_t s_bytes(const PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col))
        return -1;
    char *end;
    long long v = strtoll(PQgetvalue(res, 0, col), &end, 10);
    if (*end != '\0')
        return -1;
    return v < 0 ? 0 : (int64_t)v;
}

/* Takes the figures from the answer's row (none: the slot is not there, all unknown). */
static void s_answer(rt_slot_stats_t *self, const PGresult *res)
{
    rt_slot_figures_t f = s_unknown;
    if (PQntuples(res) == 1 && PQnfields(res) == 5) {
        bool sender = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
        bool hidden = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
        f.retained_wal_bytes = s_bytes(res, 0);
        f.lag_bytes = s_bytes(res, 1);
        if (sender && !hidden)
            f.lag_ms = PQgetisnull(res, 0, 4) ? 0 : s_bytes(res, 4);
        if (hidden && !self->hidden_logged) {
            rt_info("source: this role may not read the lag of its WAL sender in "
                    "pg_stat_replication (grant it pg_read_all_stats): the source lag in "
                    "seconds stays unknown");
            self->hidden_logged = true;
        }
    }
    self->figures = f;
    self->measured_ms = rt_mono_ms();
}

/* True when fd is ready for what PQconnectPoll asked last (no waiting). */
static bool s_ready(int fd, PostgresPollingStatusType polling)
{
    struct pollfd p = {.fd = fd, .events = polling == PGRES_POLLING_READING ? POLLIN : POLLOUT};
    return poll(&p, 1, 0) > 0;
}

/* DOWN -> CONNECTING. */
static void s_connect(rt_slot_stats_t *self, int64_t now)
{
    char line[RT_PG_ERR_MAX];
    rt_pg_opts_t o = {
        .dsn = self->dsn, .what = "the source", .application_name = "rt-publisher slot figures"};
    self->conn = rt_pg_connect_start(&o);
    if (!self->conn || PQstatus(self->conn) == CONNECTION_BAD) {
        s_down(self, s_conn_error(self, line, sizeof line));
        return;
    }
    self->state = S_CONNECTING;
    self->polling = PGRES_POLLING_WRITING;
    self->deadline_ms = now + S_CONNECT_MS;
}

/* CONNECTING: one PQconnectPoll once the socket is ready; IDLE when connected. */
static void s_connecting(rt_slot_stats_t *self, int64_t now)
{
    char line[RT_PG_ERR_MAX];
    if (!s_ready(PQsocket(self->conn), self->polling)) {
        if (now >= self->deadline_ms) {
            snprintf(line, sizeof line, "no answer within %d ms", S_CONNECT_MS);
            s_down(self, line);
        }
        return;
    }
    self->polling = PQconnectPoll(self->conn);
    if (self->polling == PGRES_POLLING_FAILED) {
        s_down(self, s_conn_error(self, line, sizeof line));
        return;
    }
    if (self->polling != PGRES_POLLING_OK)
        return;
    if (PQsetnonblocking(self->conn, 1) != 0) {
        s_down(self, s_conn_error(self, line, sizeof line));
        return;
    }
    self->state = S_IDLE;
    self->next_ms = now;
}

/* IDLE -> QUERY when the next measurement is due. */
static void s_send(rt_slot_stats_t *self, int64_t now)
{
    char line[RT_PG_ERR_MAX];
    if (now < self->next_ms)
        return;
    const char *params[] = {self->slot};
    if (!PQsendQueryParams(self->conn, s_sql, 1, NULL, params, NULL, NULL, 0)) {
        s_down(self, s_conn_error(self, line, sizeof line));
        return;
    }
    self->state = S_QUERY;
    self->answered = false;
    self->why[0] = '\0';
    self->deadline_ms = now + S_ANSWER_MS;
    self->next_ms = now + RT_SLOT_STATS_INTERVAL_MS;
}

/* QUERY: sends what is left of the query, reads what arrived; IDLE once answered. */
static void s_collect(rt_slot_stats_t *self, int64_t now)
{
    char line[RT_PG_ERR_MAX];
    if (PQflush(self->conn) < 0 || !PQconsumeInput(self->conn)) {
        s_down(self, s_conn_error(self, line, sizeof line));
        return;
    }
    /* The answer, then the NULL after it: PQgetResult blocks only while busy. */
    for (;;) {
        if (PQisBusy(self->conn)) {
            if (now >= self->deadline_ms) {
                snprintf(line, sizeof line, "no answer within %d ms", S_ANSWER_MS);
                s_down(self, line);
            }
            return;
        }
        PGresult *res = PQgetResult(self->conn);
        if (!res)
            break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && !self->answered) {
            self->answered = true;
            s_answer(self, res);
        } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rt_pg_error_line(PQresultErrorMessage(res), self->why, sizeof self->why);
        }
        PQclear(res);
    }
    if (!self->answered) {
        s_down(self, self->why[0] ? self->why : "no result");
        return;
    }
    self->state = S_IDLE;
    self->retry_ms = S_RETRY_MIN_MS;
    if (self->failing)
        rt_info("source: reading the figures of slot %s again", self->slot);
    self->failing = false;
}

void rt_slot_stats_pump(rt_slot_stats_t *self)
{
    int64_t now = rt_mono_ms();
    switch (self->state) {
    case S_DOWN:
        if (now >= self->next_ms)
            s_connect(self, now);
        break;
    case S_CONNECTING: s_connecting(self, now); break;
    case S_IDLE: s_send(self, now); break;
    case S_QUERY: s_collect(self, now); break;
    }
}

rt_slot_figures_t rt_slot_stats_get(const rt_slot_stats_t *self)
{
    if (!self || !self->measured_ms || rt_mono_ms() - self->measured_ms > S_STALE_MS)
        return s_unknown;
    return self->figures;
}
