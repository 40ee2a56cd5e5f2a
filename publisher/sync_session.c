/* publisher/sync_session.c - a copy session's thread: the temporary slot and its snapshot,
 * the published tables under it, and the jobs that copy them.
 *
 * On a replication connection of its own, CREATE_REPLICATION_SLOT rt_sync_<pid>_<n>
 * TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export') gives the consistent point L and the
 * exported snapshot S. That connection then stays idle until the session ends: S stays
 * importable while it does, and closing it drops the slot. A second connection imports S,
 * lists the publication's tables with the columns the copy sends, and is closed. Then
 * SYNC_READY goes to the coordinator; the first COPY of a table starts a job
 * (sync_job.c) that copies it under S, and each further COPY gives that job credit. A
 * table is copied once per session: COPYs that come after its job ended are ignored.
 *
 * Every query waits through s_wait, which keeps reading the pipe: "$TERM" ends the
 * session at once, whatever PostgreSQL is doing. */
#include <czmq.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"
#include "pgconn.h"
#include "sync_int.h"

/* A wait longer than this is logged, once, saying what it waits for. */
#define WAIT_NOTE_MS 5000

/* The published tables as of the snapshot, one row per column sent, in order. A table
 * whose every column is left out comes with one row whose attname is NULL. */
static const char *const s_tables_sql =
    "SELECT n.nspname, c.relname, c.relkind, "
    "       CASE WHEN c.relkind = 'p' "
    "            THEN (SELECT coalesce(sum(pg_table_size(t.relid)), 0) "
    "                    FROM pg_partition_tree(c.oid) t) "
    "            ELSE pg_table_size(c.oid) END::bigint, "
    "       p.rowfilter, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, "
    "       pg_relation_size(c.oid) / current_setting('block_size')::bigint "
    "FROM pg_publication_tables p "
    "JOIN pg_namespace n ON n.nspname = p.schemaname "
    "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename "
    "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "     AND a.attgenerated = '' AND (p.attnames IS NULL OR a.attname = ANY (p.attnames)) "
    "WHERE p.pubname = $1 AND n.nspname <> 'rt' "
    "ORDER BY n.nspname, c.relname, a.attnum";

/* A table of the session, beyond what SYNC_READY says of it. */
typedef struct {
    char *what;    /* "schema.table", for messages */
    char *sql;     /* COPY ... TO STDOUT, without a format option */
    zactor_t *job; /* the job copying it, NULL when none runs */
    bool started;  /* a job was started for it */
} s_table_t;

typedef struct {
    rt_sync_session_args_t *args; /* owned */
    zsock_t *pipe;                /* from the event loop's side (borrowed) */
    zsock_t *push;                /* the channel back */
    PGconn *repl;                 /* holds the slot and the snapshot */
    char *snapshot;               /* the exported snapshot's name */
    rt_lsn_t lsn;                 /* the slot's consistent point */
    bool ready;                   /* SYNC_READY was sent */
    bool in_schema;               /* a SCHEMA is being answered */
    bool stop;                    /* "$TERM" came, or the session failed */
    rt_sync_table_t *tables;      /* as sent in SYNC_READY */
    s_table_t *extra;             /* ntables entries */
    size_t ntables;
    size_t running[RT_SYNC_MAX_JOBS]; /* indexes of the tables whose job runs */
    size_t nrunning;
    const char *waiting_for; /* what a long wait is for, logged once after WAIT_NOTE_MS */
    int64_t wait_since_ms;
    char err[RT_PG_ERR_MAX + 256]; /* the last error, as sent */
} s_session_t;

/* Ends the session on an error: ERROR{code} to the coordinator, a note to the event loop
 * (which logs the end). The cause was logged where it was found. */
static void s_fail(s_session_t *self, int code, const char *detail)
{
    char text[RT_PG_ERR_MAX + 384];
    snprintf(text, sizeof text, "initial copy for %s failed: %s", self->args->name, detail);
    rt_sync_push_error(self->push, self->args->id, self->args->idlen, code, text);
    rt_sync_push_note(self->push, RT_SYNC_NOTE_FAILED, self->args->sync_id);
    self->stop = true;
}

/* Starts the job that copies table i for routing id [id, idlen]. */
static void s_start_job(s_session_t *self, size_t i, const char *id, size_t idlen, uint64_t count,
                        uint64_t flags)
{
    s_table_t *t = &self->extra[i];
    rt_sync_job_args_t *a = calloc(1, sizeof *a);
    rt_buf_t sql = {0};
    rt_buf_puts(&sql, t->sql);
    if (flags & RT_COPY_BINARY)
        rt_buf_puts(&sql, " (FORMAT binary)");
    if (a) {
        a->sync_id = self->args->sync_id;
        a->table = i;
        a->what = strdup(t->what);
        a->dsn = strdup(self->args->dsn);
        a->snapshot = strdup(self->snapshot);
        a->sql = rt_buf_error(&sql) == RT_OK ? strdup(rt_buf_str(&sql)) : NULL;
        a->id = malloc(idlen ? idlen : 1);
        if (a->id)
            memcpy(a->id, id, idlen);
        a->idlen = idlen;
        a->endpoint = strdup(self->args->endpoint);
        a->credit = count < RT_SYNC_MAX_CREDIT ? count : RT_SYNC_MAX_CREDIT;
    }
    rt_buf_free(&sql);
    if (a && a->what && a->dsn && a->snapshot && a->sql && a->id && a->endpoint)
        t->job = zactor_new(rt_sync_job_actor, a); /* the thread owns a from here */
    if (!t->job) {
        rt_sync_job_args_free(a);
        rt_sync_push_error(self->push, id, idlen, RT_ENOMEM, "the publisher is out of memory");
        return;
    }
    /* Credit for a job whose thread just ended is dropped, not waited on: its pipe has
     * nobody at the other end any more. */
    zsock_set_sndtimeo(zactor_sock(t->job), 0);
    t->started = true;
    self->running[self->nrunning++] = i;
    rt_debug("copy session %llu: copying %s for %.*s", (unsigned long long)self->args->sync_id,
             t->what, (int)(idlen < 64 ? idlen : 64), id);
}

/* "COPY" | routing id | table | count | flags. */
static void s_on_copy(s_session_t *self, zmsg_t *msg)
{
    zframe_t *idf = zmsg_pop(msg);
    uint64_t table = rt_sync_pop_u64(msg);
    uint64_t count = rt_sync_pop_u64(msg);
    uint64_t flags = rt_sync_pop_u64(msg);
    if (!idf)
        return;
    const char *id = (const char *)zframe_data(idf);
    size_t idlen = zframe_size(idf);
    unsigned long long sid = (unsigned long long)self->args->sync_id;
    char text[256];
    if (!self->ready) {
        snprintf(text, sizeof text, "copy session %llu is not ready yet: wait for SYNC_READY", sid);
        rt_sync_push_error(self->push, id, idlen, RT_EAGAIN, text);
    } else if (table >= self->ntables) {
        snprintf(text, sizeof text, "COPY of table %llu: copy session %llu has %zu tables",
                 (unsigned long long)table, sid, self->ntables);
        rt_sync_push_error(self->push, id, idlen, RT_EINVAL, text);
    } else if (self->extra[table].job) {
        zmsg_t *credit = zmsg_new();
        if (credit) {
            zmsg_addstr(credit, "CREDIT");
            zmsg_addmem(credit, &count, sizeof count);
            zmsg_send(&credit, self->extra[table].job);
            zmsg_destroy(&credit); /* when it was not sent: the job has just ended */
        }
    } else if (self->extra[table].started) {
        rt_debug("copy session %llu: COPY of %s after its copy ended, ignored", sid,
                 self->extra[table].what);
    } else if (self->nrunning >= RT_SYNC_MAX_JOBS) {
        snprintf(text, sizeof text,
                 "copy session %llu copies %d tables at once already, its most: wait for one "
                 "to finish",
                 sid, RT_SYNC_MAX_JOBS);
        rt_sync_push_error(self->push, id, idlen, RT_EAGAIN, text);
    } else {
        s_start_job(self, (size_t)table, id, idlen, count, flags);
    }
    zframe_destroy(&idf);
}

static void s_on_schema(s_session_t *self, zmsg_t *msg);

/* Reads one command from the pipe. */
static void s_on_pipe(s_session_t *self)
{
    zmsg_t *msg = zmsg_recv(self->pipe);
    char *cmd = msg ? zmsg_popstr(msg) : NULL;
    if (!cmd || streq(cmd, "$TERM"))
        self->stop = true;
    else if (streq(cmd, "COPY"))
        s_on_copy(self, msg);
    else if (streq(cmd, "SCHEMA"))
        s_on_schema(self, msg);
    free(cmd);
    zmsg_destroy(&msg);
}

/* rt_pg_waiter_t: waits for fd while answering the pipe. */
static int s_wait(void *arg, int fd)
{
    s_session_t *self = arg;
    while (!self->stop) {
        zmq_pollitem_t items[2] = {{zsock_resolve(self->pipe), 0, ZMQ_POLLIN, 0},
                                   {NULL, fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 1000) < 0 && zmq_errno() != EINTR)
            return RT_EIO;
        if (items[0].revents & ZMQ_POLLIN)
            s_on_pipe(self);
        if (self->stop)
            break;
        if (items[1].revents)
            return 0;
        if (self->waiting_for && rt_mono_ms() - self->wait_since_ms > WAIT_NOTE_MS) {
            rt_info("copy session %llu: %s", (unsigned long long)self->args->sync_id,
                    self->waiting_for);
            self->waiting_for = NULL;
        }
    }
    return RT_EAGAIN;
}

static int s_exec(s_session_t *self, PGconn *conn, const char *what, const char *sql, int nparams,
                  const char *const *params, PGresult **res)
{
    rt_pg_waiter_t w = {s_wait, self};
    self->wait_since_ms = rt_mono_ms();
    return rt_pg_exec_wait(conn, &w, "source", what, sql, nparams, params, res, self->err,
                           sizeof self->err);
}

static PGconn *s_connect(s_session_t *self, bool replication)
{
    rt_pg_opts_t o = {.dsn = self->args->dsn,
                      .what = "the source",
                      .application_name = "rt-publisher copy",
                      .replication = replication,
                      .stop = rt_daemon_stop_flag()};
    PGconn *conn = NULL;
    if (rt_pg_connect(&o, &conn, self->err, sizeof self->err) != RT_OK)
        return NULL;
    return conn;
}

/* Creates the temporary slot: self->lsn and self->snapshot. */
static int s_create_slot(s_session_t *self)
{
    if (!(self->repl = s_connect(self, true)))
        return RT_EDB;
    char *slot = rt_pg_ident(self->repl, self->args->slot);
    if (!slot)
        return RT_ENOMEM;
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')", slot);
    free(slot);
    self->waiting_for = "creating the slot waits for the transactions running on the source "
                        "to end (a long open transaction delays the copy)";
    PGresult *res;
    int rc =
        s_exec(self, self->repl, "creating the temporary replication slot", sql, 0, NULL, &res);
    self->waiting_for = NULL;
    if (rc != RT_OK)
        return rc;
    if (PQntuples(res) != 1 || PQnfields(res) < 3 ||
        rt_lsn_parse(PQgetvalue(res, 0, 1), &self->lsn) != RT_OK ||
        !(self->snapshot = strdup(PQgetvalue(res, 0, 2)))) {
        snprintf(self->err, sizeof self->err,
                 "source: CREATE_REPLICATION_SLOT answered something else than a slot, its "
                 "consistent point and a snapshot");
        rt_error("%s", self->err);
        PQclear(res);
        return RT_EDB;
    }
    PQclear(res);
    return RT_OK;
}

/* The COPY of table t (whose SYNC_READY entry is done): quoted names, only its rows (ONLY,
 * for a table with inheritance children) and the publication's row filter. */
static int s_copy_sql(PGconn *conn, const rt_sync_table_t *t, const char *filter, s_table_t *out)
{
    rt_buf_t cols = {0}, sql = {0};
    int rc = RT_ENOMEM;
    char *schema = rt_pg_ident(conn, t->schema), *table = rt_pg_ident(conn, t->table);
    if (!schema || !table)
        goto cleanup;
    for (uint32_t j = 0; j < t->ncols; j++) {
        char *col = rt_pg_ident(conn, t->cols[j].name);
        if (!col)
            goto cleanup;
        rt_buf_printf(&cols, "%s%s", j ? ", " : "", col);
        free(col);
    }
    bool part = t->first_page || t->end_page;
    if (t->relkind == 'r' && !filter && !part) {
        rt_buf_printf(&sql, "COPY %s.%s (%s) TO STDOUT", schema, table, rt_buf_str(&cols));
    } else {
        rt_buf_printf(&sql, "COPY (SELECT %s FROM %s%s.%s WHERE true", rt_buf_str(&cols),
                      t->relkind == 'r' ? "ONLY " : "", schema, table);
        /* A part: the rows of a range of pages (a TID range scan). */
        if (part)
            rt_buf_printf(&sql, " AND ctid >= '(%" PRIu64 ",0)'::tid", t->first_page);
        if (t->end_page)
            rt_buf_printf(&sql, " AND ctid < '(%" PRIu64 ",0)'::tid", t->end_page);
        if (filter)
            rt_buf_printf(&sql, " AND (%s)", filter);
        rt_buf_puts(&sql, ") TO STDOUT");
    }
    rt_buf_t what = {0};
    rt_buf_printf(&what, "%s.%s", schema, table);
    if (t->end_page)
        rt_buf_printf(&what, " (pages %" PRIu64 " to %" PRIu64 ")", t->first_page, t->end_page);
    else if (part)
        rt_buf_printf(&what, " (pages %" PRIu64 " to the end)", t->first_page);
    if (rt_buf_error(&sql) == RT_OK && rt_buf_error(&what) == RT_OK) {
        out->sql = strdup(rt_buf_str(&sql));
        out->what = strdup(rt_buf_str(&what));
        rc = out->sql && out->what ? RT_OK : RT_ENOMEM;
    }
    rt_buf_free(&what);
cleanup:
    free(schema);
    free(table);
    rt_buf_free(&cols);
    rt_buf_free(&sql);
    return rc;
}

/* Fills table t from rows [from, to) of the listing (one table's columns): the whole
 * table, or part k of nparts (a range of its pages). */
static int s_fill_table(s_session_t *self, PGconn *conn, PGresult *res, int from, int to,
                        uint64_t k, uint64_t nparts, rt_sync_table_t *t, s_table_t *x)
{
    if (nparts > 1) {
        uint64_t pages = strtoull(PQgetvalue(res, from, 8), NULL, 10);
        t->first_page = pages * k / nparts;
        t->end_page = k + 1 < nparts ? pages * (k + 1) / nparts : 0;
    }
    t->schema = strdup(PQgetvalue(res, from, 0));
    t->table = strdup(PQgetvalue(res, from, 1));
    t->relkind = PQgetvalue(res, from, 2)[0];
    t->bytes = strtoull(PQgetvalue(res, from, 3), NULL, 10) / nparts;
    if (!t->schema || !t->table)
        return RT_ENOMEM;
    if (t->relkind != 'r' && t->relkind != 'p') {
        snprintf(self->err, sizeof self->err, "%s.%s is published but is of relkind '%c'",
                 t->schema, t->table, t->relkind);
        return RT_EINVAL;
    }
    if (PQgetisnull(res, from, 5)) {
        snprintf(self->err, sizeof self->err,
                 "%s.%s has no column to copy (every one is generated, dropped or left out of "
                 "the publication's column list)",
                 t->schema, t->table);
        return RT_EINVAL;
    }
    if (!(t->cols = calloc((size_t)(to - from), sizeof *t->cols)))
        return RT_ENOMEM;
    for (int r = from; r < to; r++) {
        rt_sync_column_t *c = &t->cols[t->ncols++];
        c->name = strdup(PQgetvalue(res, r, 5));
        c->type = strdup(PQgetvalue(res, r, 6));
        c->typoid = (uint32_t)strtoul(PQgetvalue(res, r, 7), NULL, 10);
        if (!c->name || !c->type)
            return RT_ENOMEM;
    }
    const char *filter = PQgetisnull(res, from, 4) ? NULL : PQgetvalue(res, from, 4);
    return s_copy_sql(conn, t, filter, x);
}

static bool s_same_table(PGresult *res, int a, int b)
{
    return strcmp(PQgetvalue(res, a, 0), PQgetvalue(res, b, 0)) == 0 &&
           strcmp(PQgetvalue(res, a, 1), PQgetvalue(res, b, 1)) == 0;
}

/* In how many parts table rows [from, ...) of the listing is offered: a plain table of
 * over part_bytes in one part per part_bytes, at most one per job. */
static uint64_t s_parts(const s_session_t *self, PGresult *res, int from)
{
    uint64_t bytes = strtoull(PQgetvalue(res, from, 3), NULL, 10);
    uint64_t pages = strtoull(PQgetvalue(res, from, 8), NULL, 10);
    uint64_t n = (bytes + self->args->part_bytes - 1) / self->args->part_bytes;
    if (PQgetvalue(res, from, 2)[0] != 'r' || n < 2 || self->args->jobs < 2 || pages < 2)
        return 1;
    n = n < self->args->jobs ? n : self->args->jobs;
    return n < pages ? n : pages;
}

/* Turns the listing into self->tables and self->extra. */
static int s_build_tables(s_session_t *self, PGconn *conn, PGresult *res)
{
    int nrows = PQntuples(res);
    size_t n = 0;
    for (int r = 0; r < nrows; r++)
        if (r == 0 || !s_same_table(res, r - 1, r))
            n += s_parts(self, res, r);
    if (n > RT_SYNC_MAX_TABLES) {
        snprintf(self->err, sizeof self->err,
                 "the publication has %zu tables: one copy takes %u at most", n,
                 RT_SYNC_MAX_TABLES);
        return RT_EINVAL;
    }
    if (n && (!(self->tables = calloc(n, sizeof *self->tables)) ||
              !(self->extra = calloc(n, sizeof *self->extra))))
        return RT_ENOMEM;
    for (int from = 0; from < nrows;) {
        int to = from + 1;
        while (to < nrows && s_same_table(res, from, to))
            to++;
        uint64_t nparts = s_parts(self, res, from);
        for (uint64_t k = 0; k < nparts; k++) {
            size_t i = self->ntables++;
            int rc = s_fill_table(self, conn, res, from, to, k, nparts, &self->tables[i],
                                  &self->extra[i]);
            if (rc != RT_OK) {
                if (rc == RT_ENOMEM)
                    snprintf(self->err, sizeof self->err, "the publisher is out of memory");
                return rc;
            }
        }
        from = to;
    }
    return RT_OK;
}

/* A connection of its own in a read-only transaction that imported the snapshot: RT_OK
 * and *conn, or an error (self->err set). */
static int s_snapshot_conn(s_session_t *self, PGconn **conn)
{
    if (!(*conn = s_connect(self, false)))
        return RT_EDB;
    int rc = RT_ENOMEM;
    PGresult *res = NULL;
    rt_buf_t sql = {0};
    char *snap = rt_pg_literal(*conn, self->snapshot);
    if (snap)
        rt_buf_printf(
            &sql, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s",
            snap);
    free(snap);
    if (snap && rt_buf_error(&sql) == RT_OK &&
        (rc = s_exec(self, *conn, "importing the snapshot", rt_buf_str(&sql), 0, NULL, &res)) ==
            RT_OK)
        PQclear(res);
    rt_buf_free(&sql);
    if (rc != RT_OK) {
        PQfinish(*conn);
        *conn = NULL;
    }
    return rc;
}

/* Imports the snapshot on a connection of its own and lists the tables under it. */
static int s_list_tables(s_session_t *self)
{
    PGconn *conn = NULL;
    int rc = s_snapshot_conn(self, &conn);
    if (rc != RT_OK)
        return rc;
    PGresult *res = NULL;
    const char *params[] = {self->args->publication};
    if ((rc = s_exec(self, conn, "looking up the publication",
                     "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params, &res)))
        goto cleanup;
    bool exists = PQntuples(res) > 0;
    PQclear(res);
    res = NULL;
    if (!exists) {
        snprintf(self->err, sizeof self->err, "publication \"%s\" does not exist on the source",
                 self->args->publication);
        rt_error("copy session %llu: %s", (unsigned long long)self->args->sync_id, self->err);
        rc = RT_EINVAL;
        goto cleanup;
    }
    if ((rc = s_exec(self, conn, "listing the published tables", s_tables_sql, 1, params, &res)))
        goto cleanup;
    if ((rc = s_build_tables(self, conn, res)) != RT_OK)
        rt_error("copy session %llu: %s", (unsigned long long)self->args->sync_id, self->err);
cleanup:
    PQclear(res);
    PQfinish(conn); /* ends its read-only transaction */
    return rc;
}

/* A table and its partition ancestors, root first. */
static const char *const s_ancestors_sql =
    "SELECT n.nspname, c.relname "
    "FROM pg_namespace rn JOIN pg_class r ON r.relnamespace = rn.oid "
    "CROSS JOIN LATERAL (SELECT relid, depth "
    "                      FROM pg_partition_ancestors(r.oid) WITH ORDINALITY a(relid, depth) "
    "                    UNION ALL SELECT r.oid, 0 WHERE NOT r.relispartition) a "
    "JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE rn.nspname = $1 AND r.relname = $2 AND r.relkind IN ('r', 'p') "
    "ORDER BY a.depth DESC";

/* Adds schema.table to list (n entries) unless it is there. RT_OK or RT_ENOMEM. */
static int s_add_object(rt_sync_ddl_t *list, size_t *n, const char *schema, const char *table)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i].schema, schema) == 0 && strcmp(list[i].table, table) == 0)
            return RT_OK;
    rt_sync_ddl_t *d = &list[*n];
    d->schema = strdup(schema);
    d->table = strdup(table);
    (*n)++;
    return d->schema && d->table ? RT_OK : RT_ENOMEM;
}

/* The sequences no table or extension owns, the views and the materialized views,
 * outside rt and the system's schemas: a default or a function may use such a sequence,
 * and the application reads the views; a table's own dump has none of them. Sequences
 * first (a view may use one); pg_dump orders the views of one run by their dependencies. */
static const char s_free_relations_sql[] =
    "SELECT n.nspname, c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('S', 'v', 'm') AND n.nspname NOT IN ('rt', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "                AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e')) "
    "ORDER BY c.relkind <> 'S', 1, 2";

/* Relations a patterns job names at most (one pg_dump's command line). */
#define S_RELATIONS_PER_DUMP 1000

/* The --table= arguments of the relations of s_free_relations_sql, as of the snapshot on
 * conn: *patterns (NULL-terminated, malloc'd) and *npatterns. */
static int s_free_relations(s_session_t *self, PGconn *conn, char ***patterns, size_t *npatterns)
{
    PGresult *res = NULL;
    *patterns = NULL;
    *npatterns = 0;
    int rc = s_exec(self, conn, "listing the sequences no table owns and the views",
                    s_free_relations_sql, 0, NULL, &res);
    if (rc != RT_OK)
        return rc;
    size_t n = (size_t)PQntuples(res);
    char **list = calloc(n + 1, sizeof *list);
    if (!list)
        rc = RT_ENOMEM;
    for (size_t i = 0; i < n && rc == RT_OK; i++)
        if (!(list[i] =
                  rt_sync_table_pattern(PQgetvalue(res, (int)i, 0), PQgetvalue(res, (int)i, 1))))
            rc = RT_ENOMEM;
    PQclear(res);
    if (rc != RT_OK) {
        rt_sync_patterns_free(list);
        return rc;
    }
    *patterns = list;
    *npatterns = n;
    return RT_OK;
}

/* The tables asked for (pairs of frames in msg) and their partition ancestors, each root
 * first, and the --table= arguments of the sequences no table owns and of the views
 * (s_free_relations), as of the snapshot; *server_version is the source's. */
static int s_schema_objects(s_session_t *self, zmsg_t *msg, rt_sync_ddl_t **list, size_t *n,
                            char ***relations, size_t *nrelations, int *server_version)
{
    size_t asked = zmsg_size(msg) / 2;
    PGconn *conn = NULL;
    int rc = s_snapshot_conn(self, &conn);
    if (rc != RT_OK)
        return rc;
    *server_version = PQserverVersion(conn);
    /* Each table brings at most 32 levels of ancestors (PostgreSQL's nesting is bounded by
     * the stack; deeper trees are grown as needed). */
    size_t cap = asked * 4 + 4;
    *list = calloc(cap, sizeof **list);
    if (!*list)
        rc = RT_ENOMEM;
    for (size_t i = 0; i < asked && rc == RT_OK; i++) {
        char *schema = zmsg_popstr(msg), *table = zmsg_popstr(msg);
        const char *p[] = {schema ? schema : "", table ? table : ""};
        PGresult *res = NULL;
        rc = s_exec(self, conn, "looking up a table's partition ancestors", s_ancestors_sql, 2, p,
                    &res);
        if (rc == RT_OK && PQntuples(res) == 0) {
            snprintf(self->err, sizeof self->err, "table %s.%s is not on the source", p[0], p[1]);
            rc = RT_EINVAL;
        }
        for (int r = 0; rc == RT_OK && r < PQntuples(res); r++) {
            if (*n == cap) {
                rt_sync_ddl_t *grown = realloc(*list, 2 * cap * sizeof **list);
                if (!grown) {
                    rc = RT_ENOMEM;
                    break;
                }
                memset(grown + cap, 0, cap * sizeof *grown);
                *list = grown;
                cap *= 2;
            }
            rc = s_add_object(*list, n, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
        }
        PQclear(res);
        free(schema);
        free(table);
    }
    if (rc == RT_OK)
        rc = s_free_relations(self, conn, relations, nrelations);
    PQfinish(conn);
    return rc;
}

/* Answers SCHEMA: pg_dump --schema-only of each table asked for and of its partition
 * ancestors, before and after the rows, and of the objects they may use or that use them
 * (every object that is not a relation, the sequences no table owns, the views and
 * materialized views, before and after the rows: the support script), under the
 * snapshot. */
static int s_schema(s_session_t *self, const char *id, size_t idlen, zmsg_t *msg)
{
    rt_sync_ddl_t *list = NULL;
    size_t n = 0, nrel = 0;
    char **relations = NULL;
    int version = 0;
    char **env = NULL;
    char *program = NULL;
    int64_t start = rt_mono_ms();
    int rc = s_schema_objects(self, msg, &list, &n, &relations, &nrel, &version);
    if (rc == RT_OK && !(program = rt_sync_pg_dump_program(self->args->pg_dump, version)))
        rc = RT_ENOMEM;
    if (rc == RT_OK && !(env = rt_sync_pg_dump_env(self->args->dsn, self->err, sizeof self->err)))
        rc = RT_EINVAL;
    rt_pg_waiter_t w = {s_wait, self};
    rt_sync_dump_t d = {.program = program, .env = env, .snapshot = self->snapshot, .wait = &w};
    static const char *const sections[] = {"pre-data", "post-data"};
    /* Jobs: the objects, the free relations in groups (before the rows, then after them:
     * a materialized view's indexes), then each table's two sections. */
    size_t nreljobs = (nrel + S_RELATIONS_PER_DUMP - 1) / S_RELATIONS_PER_DUMP;
    size_t first = 1 + 2 * nreljobs, njobs = first + 2 * n;
    rt_sync_dump_job_t *jobs = rc == RT_OK ? calloc(njobs, sizeof *jobs) : NULL;
    char ***groups = rc == RT_OK ? calloc(nreljobs + 1, sizeof *groups) : NULL;
    if (rc == RT_OK && (!jobs || !groups))
        rc = RT_ENOMEM;
    if (jobs)
        jobs[0] = (rt_sync_dump_job_t){.objects = true, .section = "pre-data"};
    for (size_t g = 0; g < nreljobs && rc == RT_OK; g++) {
        size_t from = g * S_RELATIONS_PER_DUMP, k = nrel - from;
        k = k > S_RELATIONS_PER_DUMP ? S_RELATIONS_PER_DUMP : k;
        /* A NULL-terminated window of relations: its own array of pointers into it. */
        if (!(groups[g] = calloc(k + 1, sizeof *groups[g]))) {
            rc = RT_ENOMEM;
            break;
        }
        memcpy(groups[g], relations + from, k * sizeof *groups[g]);
        jobs[1 + g] = (rt_sync_dump_job_t){.patterns = groups[g], .section = "pre-data"};
        jobs[1 + nreljobs + g] =
            (rt_sync_dump_job_t){.patterns = groups[g], .section = "post-data"};
    }
    for (size_t i = 0; i < 2 * n && rc == RT_OK; i++)
        jobs[first + i] = (rt_sync_dump_job_t){
            .schema = list[i / 2].schema, .table = list[i / 2].table, .section = sections[i % 2]};
    if (rc == RT_OK)
        rc = rt_sync_pg_dumps(&d, jobs, njobs, self->err, sizeof self->err);
    for (size_t i = 0; i < 2 * n && rc == RT_OK; i++) {
        rt_sync_dump_job_t *j = &jobs[first + i];
        char *text = strdup(j->out.data ? j->out.data : "");
        if (!text)
            rc = RT_ENOMEM;
        *(i % 2 ? &list[i / 2].post : &list[i / 2].pre) = text;
    }
    rt_buf_t support = {0};
    for (size_t i = 0; i < first && rc == RT_OK; i++)
        if (jobs[i].out.data)
            rt_buf_append(&support, jobs[i].out.data, jobs[i].out.len);
    if (rc == RT_OK && rt_buf_error(&support) != RT_OK)
        rc = RT_ENOMEM;
    for (size_t i = 0; i < njobs && jobs; i++)
        rt_buf_free(&jobs[i].out);
    free(jobs);
    for (size_t g = 0; groups && g < nreljobs; g++)
        free(groups[g]);
    free(groups);
    if (rc == RT_OK) {
        rt_msg_t m = {.type = RT_MSG_SCHEMA_READY,
                      .sync_id = self->args->sync_id,
                      .ddl = list,
                      .nddl = n,
                      .text = (char *)(support.data ? support.data : "")};
        rc = rt_sync_push_msg(self->push, id, idlen, &m);
        if (rc == RT_EINVAL)
            snprintf(self->err, sizeof self->err,
                     "the definitions of %zu tables do not fit in one message", n);
        else if (rc != RT_OK)
            snprintf(self->err, sizeof self->err, "the definitions could not be sent");
        else
            rt_info("copy session %llu: definitions of %zu tables and of the objects they may "
                    "use or that use them (%zu other relations: sequences no table owns, views, "
                    "materialized views) "
                    "for %s by %s in %.1f s",
                    (unsigned long long)self->args->sync_id, n, nrel, self->args->name, program,
                    (double)(rt_mono_ms() - start) / 1000.0);
    }
    if (rc == RT_ENOMEM)
        snprintf(self->err, sizeof self->err, "the publisher is out of memory");
    rt_buf_free(&support);
    free(program);
    rt_sync_env_free(env);
    rt_sync_ddl_free(list, n);
    rt_sync_patterns_free(relations);
    return rc;
}

/* "SCHEMA" | routing id | schema | table ... */
static void s_on_schema(s_session_t *self, zmsg_t *msg)
{
    zframe_t *idf = zmsg_pop(msg);
    if (!idf)
        return;
    const char *id = (const char *)zframe_data(idf);
    size_t idlen = zframe_size(idf);
    unsigned long long sid = (unsigned long long)self->args->sync_id;
    char text[RT_PG_ERR_MAX + 384];
    if (!self->ready || self->in_schema) {
        snprintf(text, sizeof text, "copy session %llu %s", sid,
                 self->in_schema ? "answers a SCHEMA already" : "is not ready yet");
        rt_sync_push_error(self->push, id, idlen, RT_EAGAIN, text);
    } else {
        self->in_schema = true;
        self->err[0] = '\0';
        int rc = s_schema(self, id, idlen, msg);
        self->in_schema = false;
        if (rc != RT_OK && rc != RT_EAGAIN) {
            rt_error("copy session %llu: %s", sid, self->err);
            snprintf(text, sizeof text, "creating the tables: %s", self->err);
            rt_sync_push_error(self->push, id, idlen, rc == RT_EDB ? RT_EDB : RT_EINVAL, text);
        }
    }
    zframe_destroy(&idf);
}

/* Sends SYNC_READY to the coordinator. */
static int s_ready(s_session_t *self)
{
    rt_msg_t m = {.type = RT_MSG_SYNC_READY,
                  .sync_id = self->args->sync_id,
                  .seq = self->args->start_seq,
                  .lsn = self->lsn,
                  .tables = self->tables,
                  .ntables = self->ntables,
                  .text = self->snapshot};
    int rc = rt_sync_push_msg(self->push, self->args->id, self->args->idlen, &m);
    if (rc != RT_OK) {
        snprintf(self->err, sizeof self->err,
                 rc == RT_EINVAL ? "the list of %zu tables does not fit in one message"
                                 : "the list of %zu tables could not be sent",
                 self->ntables);
        rt_error("copy session %llu: %s", (unsigned long long)self->args->sync_id, self->err);
        return rc;
    }
    rt_sync_push_note(self->push, RT_SYNC_NOTE_READY, self->args->sync_id);
    char lsn[32];
    rt_info("copy session %llu of subscriber %s starts: slot %s at %s, snapshot %s, %zu tables",
            (unsigned long long)self->args->sync_id, self->args->name, self->args->slot,
            rt_lsn_format(self->lsn, lsn, sizeof lsn), self->snapshot, self->ntables);
    self->ready = true;
    return RT_OK;
}

/* Forgets the job of running entry k, which ended. */
static void s_reap_job(s_session_t *self, size_t k)
{
    s_table_t *t = &self->extra[self->running[k]];
    zactor_destroy(&t->job);
    self->running[k] = self->running[--self->nrunning];
}

/* Serves COPYs until "$TERM", watching the replication connection and the jobs. */
static void s_serve(s_session_t *self)
{
    while (!self->stop) {
        zmq_pollitem_t items[2 + RT_SYNC_MAX_JOBS] = {{zsock_resolve(self->pipe), 0, ZMQ_POLLIN, 0},
                                                      {NULL, PQsocket(self->repl), ZMQ_POLLIN, 0}};
        size_t n = self->nrunning;
        for (size_t k = 0; k < n; k++)
            items[2 + k] = (zmq_pollitem_t){zactor_resolve(self->extra[self->running[k]].job), 0,
                                            ZMQ_POLLIN, 0};
        if (zmq_poll(items, (int)(2 + n), -1) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            s_fail(self, RT_EIO, "polling failed");
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_on_pipe(self);
        if (items[1].revents &&
            (!PQconsumeInput(self->repl) || PQstatus(self->repl) == CONNECTION_BAD)) {
            char line[RT_PG_ERR_MAX];
            snprintf(self->err, sizeof self->err,
                     "the replication connection that holds the snapshot broke: %s",
                     rt_pg_error_line(PQerrorMessage(self->repl), line, sizeof line));
            rt_error("copy session %llu: %s", (unsigned long long)self->args->sync_id, self->err);
            s_fail(self, RT_EDB, self->err);
            break;
        }
        /* A job's pipe is readable once its thread ended. Backwards: reaping moves the
         * last entry into k. */
        for (size_t k = n; k-- > 0;)
            if (items[2 + k].revents & ZMQ_POLLIN)
                s_reap_job(self, k);
    }
}

/* Asks the server to cancel the query running on conn (a short connection of its own). */
static void s_cancel(PGconn *conn)
{
    char errbuf[256];
    PGcancel *c = PQgetCancel(conn);
    if (c && !PQcancel(c, errbuf, sizeof errbuf))
        rt_warn("could not cancel a query on the source: %s", errbuf);
    PQfreeCancel(c);
}

void rt_sync_session_actor(zsock_t *pipe, void *arg)
{
    s_session_t self = {.args = arg, .pipe = pipe};
    zsock_signal(pipe, 0);
    if (!(self.push = rt_sync_push_new(self.args->endpoint)))
        goto cleanup;
    int rc = s_create_slot(&self);
    if (rc == RT_OK)
        rc = s_list_tables(&self);
    if (rc == RT_OK)
        rc = s_ready(&self);
    if (rc == RT_OK)
        s_serve(&self);
    else if (!self.stop && rc != RT_EAGAIN) /* RT_EAGAIN: asked to stop */
        s_fail(&self, rc == RT_EINVAL ? RT_EINVAL : RT_EDB,
               self.err[0] ? self.err : rt_strerror(rc));
cleanup:
    while (self.nrunning)
        s_reap_job(&self, self.nrunning - 1); /* each ends on the $TERM zactor_destroy sends */
    if (self.repl) {
        /* A CREATE_REPLICATION_SLOT still waiting for transactions would not notice the
         * connection closing until they end: cancel it first. */
        if (PQtransactionStatus(self.repl) == PQTRANS_ACTIVE)
            s_cancel(self.repl);
        PQfinish(self.repl); /* the temporary slot goes with it */
    }
    for (size_t i = 0; i < self.ntables; i++) {
        free(self.extra[i].what);
        free(self.extra[i].sql);
    }
    free(self.extra);
    rt_sync_tables_free(self.tables, self.ntables);
    free(self.snapshot);
    zsock_destroy(&self.push);
    rt_sync_session_args_free(self.args);
}
