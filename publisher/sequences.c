/* publisher/sequences.c - the source's sequences, polled.
 *
 * Logical decoding carries no sequence changes, so their values are read from the
 * source every RT_SEQ_POLL_MS on a connection of their own, without blocking the
 * capture: a query is sent, its answer collected on a later pump. The capture stores
 * the sequences whose value moved since the last answer in a record of their own
 * (schemas/wire.md, "Sequences"); subscribers move theirs forward only. Which
 * sequences: every one, when the publication is FOR ALL TABLES; else those the
 * publication's tables (or their partition roots) own or use in a column default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_int.h"
#include "daemon.h"
#include "log.h"
#include "pgconn.h"

/* How long a failed connection waits before the next attempt. */
#define S_RETRY_MS 5000

static const char *const s_poll_sql =
    "WITH pub AS (SELECT c.oid FROM pg_catalog.pg_publication_tables t "
    "JOIN pg_catalog.pg_namespace n ON n.nspname = t.schemaname "
    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename "
    "WHERE t.pubname = $1), "
    "rels AS (SELECT a.relid AS oid FROM pub, pg_catalog.pg_partition_ancestors(pub.oid) a), "
    "used AS (SELECT d.objid AS oid FROM pg_catalog.pg_depend d JOIN rels ON d.refobjid = rels.oid "
    "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') "
    "UNION SELECT d.refobjid FROM pg_catalog.pg_depend d "
    "JOIN pg_catalog.pg_attrdef ad ON d.objid = ad.oid JOIN rels ON ad.adrelid = rels.oid "
    "WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass "
    "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass) "
    /* CASE: the functions fail on anything but a sequence, whatever order the planner
     * picks for the conditions. */
    "SELECT * FROM (SELECT n.nspname, c.relname, CASE WHEN c.relkind = 'S' AND "
    "pg_catalog.has_sequence_privilege(c.oid, 'SELECT,USAGE') "
    "THEN pg_catalog.pg_sequence_last_value(c.oid) END AS v "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'S' AND n.nspname <> '" RT_OWN_SCHEMA "' "
    "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
    "AND (EXISTS (SELECT 1 FROM pg_catalog.pg_publication p "
    "WHERE p.pubname = $1 AND p.puballtables) OR c.oid IN (SELECT oid FROM used))) q "
    "WHERE v IS NOT NULL "
    "ORDER BY 1, 2";

struct rt_seqs_t {
    char *dsn;
    char *publication;
    PGconn *conn;            /* NULL while down */
    bool busy;               /* a poll's query is in flight */
    bool answered;           /* its rows are in */
    char why[RT_PG_ERR_MAX]; /* its error, "" if none */
    bool failing;            /* the last attempt failed: logged once until one succeeds */
    int64_t next_poll_ms;    /* when the next poll is due */
    zhashx_t *sent;          /* "schema\x1fname" -> int64_t *: the value last handed over */
};

rt_seqs_t *rt_seqs_new(const char *dsn, const char *publication)
{
    rt_seqs_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup(dsn);
    self->publication = strdup(publication);
    self->sent = zhashx_new();
    if (!self->dsn || !self->publication || !self->sent) {
        rt_seqs_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->sent, (zhashx_destructor_fn *)zstr_free);
    return self;
}

void rt_seqs_destroy(rt_seqs_t **self_p)
{
    rt_seqs_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        PQfinish(self->conn);
    zhashx_destroy(&self->sent);
    free(self->dsn);
    free(self->publication);
    free(self);
    *self_p = NULL;
}

void rt_seqs_resend(rt_seqs_t *self)
{
    zhashx_purge(self->sent);
}

/* Drops the connection after a failure, logged once until a poll succeeds again. */
static void s_down(rt_seqs_t *self, const char *why)
{
    if (!self->failing)
        rt_warn("source: reading the sequences failed (%s); retrying every %d s", why,
                S_RETRY_MS / 1000);
    self->failing = true;
    if (self->conn)
        PQfinish(self->conn);
    self->conn = NULL;
    self->busy = false;
    self->next_poll_ms = rt_mono_ms() + S_RETRY_MS;
}

/* Hands over the rows of an answer whose value moved. */
static int s_answer(rt_seqs_t *self, PGresult *res, rt_seqs_fn *fn, void *arg)
{
    int moved = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *schema = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
        char *end;
        long long v = strtoll(PQgetvalue(res, i, 2), &end, 10);
        if (*end != '\0')
            continue;
        char key[2 * 256 + 2];
        if (snprintf(key, sizeof key, "%s\x1f%s", schema, name) >= (int)sizeof key)
            continue; /* names are at most 63 bytes: never */
        char *was = zhashx_lookup(self->sent, key);
        char now[24];
        snprintf(now, sizeof now, "%lld", v);
        if (was && strcmp(was, now) == 0)
            continue;
        int rc = fn(arg, schema, name, (int64_t)v);
        if (rc < 0)
            return rc;
        char *copy = strdup(now);
        if (!copy)
            return RT_ENOMEM;
        zhashx_update(self->sent, key, copy);
        moved++;
    }
    return moved;
}

int rt_seqs_pump(rt_seqs_t *self, rt_seqs_fn *fn, void *arg)
{
    int64_t now = rt_mono_ms();
    if (!self->busy) {
        if (now < self->next_poll_ms)
            return 0;
        self->next_poll_ms = now + RT_SEQ_POLL_MS;
        if (!self->conn) {
            rt_pg_opts_t o = {.dsn = self->dsn,
                              .what = "the source",
                              .application_name = "rt-publisher sequences",
                              .timeout_ms = 2000,
                              .stop = rt_daemon_stop_flag()};
            char err[RT_PG_ERR_MAX];
            if (rt_pg_connect(&o, &self->conn, err, sizeof err) != RT_OK) {
                s_down(self, err);
                return 0;
            }
            PQsetnonblocking(self->conn, 1);
        }
        const char *params[] = {self->publication};
        if (!PQsendQueryParams(self->conn, s_poll_sql, 1, NULL, params, NULL, NULL, 0)) {
            char line[RT_PG_ERR_MAX];
            s_down(self, rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
            return 0;
        }
        self->busy = true;
        self->answered = false;
        self->why[0] = '\0';
    }
    if (PQflush(self->conn) < 0 || !PQconsumeInput(self->conn)) {
        char line[RT_PG_ERR_MAX];
        s_down(self, rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
        return 0;
    }
    /* The answer, then the NULL after it: PQgetResult blocks only while busy. */
    int rc = 0;
    for (;;) {
        if (PQisBusy(self->conn))
            return rc;
        PGresult *res = PQgetResult(self->conn);
        if (!res)
            break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && !self->answered) {
            self->answered = true;
            rc = s_answer(self, res, fn, arg);
        } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rt_pg_error_line(PQresultErrorMessage(res), self->why, sizeof self->why);
        }
        PQclear(res);
        if (rc < 0)
            return rc;
    }
    self->busy = false;
    if (!self->answered) {
        s_down(self, self->why[0] ? self->why : "no result");
        return 0;
    }
    if (self->failing)
        rt_info("source: reading the sequences again");
    self->failing = false;
    return rc;
}
