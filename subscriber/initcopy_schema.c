/* subscriber/initcopy_schema.c - --create-tables: the tables missing on the replica are
 * created from the source's definitions (pg_dump --schema-only, run by the publisher under
 * the copy's snapshot; schemas/protocol.md, "Creating the tables").
 *
 * What comes before the rows (the table, its owned sequences, defaults, identity, its
 * attachment as a partition) runs before the copy, in one transaction that also records
 * what comes after the rows (keys, indexes, constraints, triggers) in rt.sync_ddl. What
 * needs the table alone (its keys and indexes) is built by a copy job once the table's rows
 * are in, in parallel with the other copies; the rest (foreign keys, triggers, partitions'
 * index attachments) runs when the copy ends, in the transaction that ends it. Indexes are
 * built once over the copied rows, the fastest way to load, and a kill in between loses
 * nothing: what rt.sync_ddl still holds runs later.
 *
 * The views and materialized views of the source come with the support script (created
 * once the tables they read are); a materialized view is filled from the copied rows
 * when the copy ends.
 *
 * Definitions may depend on each other across tables (a foreign key needs the key it
 * refers to, a default the sequence another table owns): each runs in a savepoint, and
 * those that fail are tried again after the others, until a pass makes no progress. */
#include "initcopy_schema.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pgconn.h"

static int s_run(PGconn *conn, const char *what, const char *sql, int nparams,
                 const char *const *params, char *err, size_t err_size)
{
    return rt_pg_run(conn, "replica", what, sql, nparams, params, err, err_size);
}

/* A script run quietly: its failure is an answer here, logged by the caller if final. */
static int s_try(PGconn *conn, const char *script, char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, script);
    ExecStatusType st = PQresultStatus(res);
    int rc = RT_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rt_pg_error_line(PQerrorMessage(conn), err, err_size);
        rc = rt_pg_failure(conn);
    }
    PQclear(res);
    return rc;
}

/* The object a pg_dump entry defines, from its header ("-- Name: f(); Type: FUNCTION;
 * Schema: public; ..."), into out. */
static void s_entry_name(const char *entry, char *out, size_t size)
{
    const char *p = strstr(entry, "-- Name: ");
    size_t n = 0;
    if (p) {
        p += 9;
        n = strcspn(p, "\n");
    }
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p ? p : "(unnamed)");
}

/* Runs a pg_dump script one entry at a time (each starts with a comment "-- Name: ...;
 * Type: ...;"), in savepoints: an entry that fails because its object is there already is
 * skipped. That happens to a partition created under a parent the replica had: attaching
 * it created its share of the parent's indexes and keys, as it did on the source, where
 * pg_dump then found them; and to the objects of the support script the replica has.
 * tolerant: any other failure of an entry is also skipped (the support script: an object
 * no table needs may fail, and one a table needs makes that table's definition fail,
 * naming it): appended to *again when again is not NULL (a function of a table's row type
 * can be created once the table is), else logged with the entry's object. */
static int s_try_entries(PGconn *conn, const char *script, bool tolerant, rt_buf_t *again,
                         char *err, size_t err_size)
{
    static const char mark[] = "\n--\n-- Name: ";
    rt_buf_t part = {0};
    int rc = RT_OK;
    for (const char *p = script; *p && rc == RT_OK;) {
        const char *next = strstr(p + 1, mark);
        size_t len = next ? (size_t)(next - p) + 1 : strlen(p);
        rt_buf_reset(&part);
        rt_buf_append(&part, p, len);
        if (rt_buf_error(&part) != RT_OK) {
            rc = RT_ENOMEM;
            break;
        }
        p += len;
        if ((rc = s_run(conn, "running the definitions", "SAVEPOINT rt_entry", 0, NULL, err,
                        err_size)) != RT_OK)
            break;
        PGresult *res = PQexec(conn, rt_buf_str(&part));
        ExecStatusType st = PQresultStatus(res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool failed = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
        /* 42P07 duplicate_table, 42710 duplicate_object, 42723 duplicate_function, 42P06
         * duplicate_schema, 42P16 a second primary key. */
        bool there = failed && state &&
                     (strcmp(state, "42P07") == 0 || strcmp(state, "42710") == 0 ||
                      strcmp(state, "42723") == 0 || strcmp(state, "42P06") == 0 ||
                      (strcmp(state, "42P16") == 0 && strstr(rt_buf_str(&part), "PRIMARY KEY")));
        if (failed && !there && PQstatus(conn) == CONNECTION_OK && tolerant && again) {
            rt_buf_append(again, part.data, part.len);
        } else if (failed && !there && PQstatus(conn) == CONNECTION_OK && tolerant) {
            char name[256], why[RT_PG_ERR_MAX];
            s_entry_name(rt_buf_str(&part), name, sizeof name);
            rt_pg_error_line(PQerrorMessage(conn), why, sizeof why);
            rt_warn("initial copy: %s was not created on the replica: %s", name, why);
        } else if (failed && !there) {
            rt_pg_error_line(PQerrorMessage(conn), err, err_size);
            rc = rt_pg_failure(conn);
        }
        PQclear(res);
        if (rc == RT_OK)
            rc = s_run(conn, "running the definitions",
                       failed ? "ROLLBACK TO SAVEPOINT rt_entry" : "RELEASE SAVEPOINT rt_entry", 0,
                       NULL, err, err_size);
    }
    rt_buf_free(&part);
    return rc;
}

typedef struct {
    const char *schema, *table;
    const char *script;
    bool entries;     /* run entry by entry (s_try_entries) */
    const char *post; /* create: what runs after the rows, recorded when the script ran */
    bool done;
    char err[RT_PG_ERR_MAX];
} s_item_t;

typedef int (*s_done_fn)(PGconn *conn, s_item_t *it, const char *source);

/* Runs each item's script in a savepoint, again and again while a pass makes progress;
 * on_done (may be NULL) runs in the same savepoint after each success. RT_OK when all ran;
 * RT_EINVAL when some cannot (each logged, naming its table and what); RT_EIO, RT_EDB. */
static int s_run_all(PGconn *conn, s_item_t *items, size_t n, const char *what, s_done_fn on_done,
                     const char *source)
{
    size_t left = n;
    for (bool progress = true; left && progress;) {
        progress = false;
        for (size_t i = 0; i < n; i++) {
            s_item_t *it = &items[i];
            if (it->done)
                continue;
            int rc = s_run(conn, what, "SAVEPOINT rt_ddl", 0, NULL, NULL, 0);
            if (rc != RT_OK)
                return rc;
            it->err[0] = '\0';
            rc = it->entries ? s_try_entries(conn, it->script, false, NULL, it->err, sizeof it->err)
                             : s_try(conn, it->script, it->err, sizeof it->err);
            if (rc == RT_OK && on_done)
                rc = on_done(conn, it, source);
            if (rc == RT_EIO)
                return rc;
            int end =
                s_run(conn, what,
                      rc == RT_OK ? "RELEASE SAVEPOINT rt_ddl" : "ROLLBACK TO SAVEPOINT rt_ddl", 0,
                      NULL, NULL, 0);
            if (end != RT_OK)
                return end;
            if (rc == RT_OK) {
                it->done = true;
                left--;
                progress = true;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!items[i].done)
            rt_error("initial copy: %s.%s: %s failed on the replica: %s", items[i].schema,
                     items[i].table, what, items[i].err);
    return left ? RT_EINVAL : RT_OK;
}

/* The first column of the first row of a query into *value (malloc'd; NULL without
 * rows). */
static int s_value(PGconn *conn, const char *what, const char *sql, int nparams,
                   const char *const *params, char **value)
{
    *value = NULL;
    PGresult *res = rt_pg_exec(conn, "replica", what, sql, nparams, params, NULL, 0);
    if (!res)
        return rt_pg_failure(conn);
    int rc = RT_OK;
    if (PQntuples(res) > 0 && !(*value = strdup(PQgetvalue(res, 0, 0))))
        rc = RT_ENOMEM;
    PQclear(res);
    return rc;
}

/* Whether schema.table exists on the replica (as anything). */
static int s_exists(PGconn *conn, const char *schema, const char *table, bool *exists)
{
    const char *p[] = {schema, table};
    char *one = NULL;
    int rc = s_value(conn, "looking up a table",
                     "SELECT 1 FROM pg_class c JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                     2, p, &one);
    *exists = one != NULL;
    free(one);
    return rc;
}

int rt_initcopy_missing(PGconn *conn, const rt_sync_table_t *tables, size_t ntables,
                        rt_sync_ddl_t **missing, size_t *nmissing)
{
    *missing = NULL;
    *nmissing = 0;
    if (!ntables)
        return RT_OK;
    rt_sync_ddl_t *list = calloc(ntables, sizeof *list);
    if (!list)
        return RT_ENOMEM;
    size_t n = 0;
    int rc = RT_OK;
    for (size_t i = 0; i < ntables && rc == RT_OK; i++) {
        const rt_sync_table_t *t = &tables[i];
        bool seen = false, exists = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = strcmp(list[j].schema, t->schema) == 0 && strcmp(list[j].table, t->table) == 0;
        if (seen || (rc = s_exists(conn, t->schema, t->table, &exists)) != RT_OK || exists)
            continue;
        list[n].schema = strdup(t->schema);
        list[n].table = strdup(t->table);
        list[n].pre = strdup("");
        list[n].post = strdup("");
        if (!list[n].schema || !list[n].table || !list[n].pre || !list[n].post)
            rc = RT_ENOMEM;
        n++;
    }
    if (rc != RT_OK || n == 0) {
        rt_sync_ddl_free(list, n);
        return rc;
    }
    *missing = list;
    *nmissing = n;
    return RT_OK;
}

/* Records what runs after it->table's rows, in the savepoint that created it. */
static int s_record_post(PGconn *conn, s_item_t *it, const char *source)
{
    const char *p[] = {source, it->schema, it->table, it->post};
    PGresult *res =
        rt_pg_exec(conn, "replica", "recording a table's indexes and constraints",
                   "INSERT INTO rt.sync_ddl (source, nspname, relname, ord, post) "
                   "VALUES ($1, $2, $3, (SELECT coalesce(max(ord), 0) + 1 FROM rt.sync_ddl "
                   "WHERE source = $1), $4) ON CONFLICT (source, nspname, relname) "
                   "DO UPDATE SET ord = excluded.ord, post = excluded.post",
                   4, p, it->err, sizeof it->err);
    if (!res)
        return rt_pg_failure(conn);
    PQclear(res);
    return RT_OK;
}

/* The materialized views on the replica, as an oid[] literal (malloc'd), into *oids. */
static int s_matviews(PGconn *conn, char **oids)
{
    return s_value(conn, "listing the materialized views",
                   "SELECT coalesce(array_agg(oid), '{}')::text FROM pg_class WHERE relkind = 'm'",
                   0, NULL, oids);
}

/* Records in rt.sync_ddl a REFRESH of each materialized view created since *before (an
 * oid[] of s_matviews), in the order they were created: pg_dump's definition makes it
 * WITH NO DATA, and it is filled from the copied rows when the copy ends (its rows are not
 * copied: logical decoding has no REFRESH, so the replica's own tables must make them). */
static int s_record_refreshes(PGconn *conn, const char *source, const char *before)
{
    const char *p[] = {source, before};
    return s_run(conn, "recording the materialized views to fill",
                 "INSERT INTO rt.sync_ddl (source, nspname, relname, ord, post) "
                 "SELECT $1, n.nspname, c.relname, (SELECT coalesce(max(ord), 0) FROM rt.sync_ddl "
                 "WHERE source = $1) + row_number() OVER (ORDER BY c.oid), "
                 "format('REFRESH MATERIALIZED VIEW %I.%I;', n.nspname, c.relname) "
                 "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE c.relkind = 'm' AND NOT c.oid = ANY ($2::oid[]) "
                 "ON CONFLICT (source, nspname, relname) DO UPDATE SET post = excluded.post",
                 2, p, NULL, 0);
}

int rt_initcopy_create_tables(PGconn *conn, const char *source, const char *support,
                              const rt_sync_ddl_t *ddl, size_t n, size_t *created)
{
    *created = 0;
    s_item_t *items = calloc(n ? n : 1, sizeof *items);
    if (!items)
        return RT_ENOMEM;
    int rc = s_run(conn, "creating the tables", "BEGIN", 0, NULL, NULL, 0);
    bool begun = rc == RT_OK;
    /* First what the tables may use and the replica lacks, in the same transaction; what
     * fails is tried again once the tables are there. */
    char err[RT_PG_ERR_MAX] = "";
    rt_buf_t again = {0};
    char *matviews = NULL;
    if (rc == RT_OK)
        rc = s_matviews(conn, &matviews);
    if (rc == RT_OK && support && support[0])
        rc = s_try_entries(conn, support, true, &again, err, sizeof err);
    if (rc == RT_OK && rt_buf_error(&again) != RT_OK)
        rc = RT_ENOMEM;
    size_t k = 0;
    /* Checked again in the transaction: an ancestor of a missing table may be there. */
    for (size_t i = 0; i < n && rc == RT_OK; i++) {
        bool exists = false;
        if ((rc = s_exists(conn, ddl[i].schema, ddl[i].table, &exists)) != RT_OK || exists)
            continue;
        char *schema = rt_pg_ident(conn, ddl[i].schema);
        rt_buf_t sql = {0};
        if (schema)
            rt_buf_printf(&sql, "CREATE SCHEMA IF NOT EXISTS %s", schema);
        free(schema);
        rc = schema && rt_buf_error(&sql) == RT_OK
                 ? s_run(conn, "creating a schema", rt_buf_str(&sql), 0, NULL, NULL, 0)
                 : RT_ENOMEM;
        rt_buf_free(&sql);
        items[k++] = (s_item_t){.schema = ddl[i].schema,
                                .table = ddl[i].table,
                                .script = ddl[i].pre,
                                .post = ddl[i].post};
    }
    if (rc == RT_OK)
        rc = s_run_all(conn, items, k, "creating it", s_record_post, source);
    if (rc == RT_OK && again.len)
        rc = s_try_entries(conn, rt_buf_str(&again), true, NULL, err, sizeof err);
    if (rc == RT_OK)
        rc = s_record_refreshes(conn, source, matviews);
    if (err[0])
        rt_error("initial copy: creating the objects the tables use failed: %s", err);
    rt_buf_free(&again);
    free(matviews);
    if (rc == RT_OK)
        rc = s_run(conn, "creating the tables", "COMMIT", 0, NULL, NULL, 0);
    else if (begun && PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    if (rc == RT_OK) {
        *created = k;
        for (size_t i = 0; i < k; i++)
            rt_info("initial copy: created %s.%s from the source's definition", items[i].schema,
                    items[i].table);
    }
    free(items);
    return rc;
}

/* Whether a post-data entry (a chunk of s_try_entries) builds something of its own table
 * only: a key, unique or exclusion constraint ("Type: CONSTRAINT"; a foreign key is "FK
 * CONSTRAINT") or an index ("Type: INDEX"; "INDEX ATTACH" joins two tables' indexes). */
static bool s_entry_local(const char *entry, size_t len)
{
    char line[1024];
    const char *name = entry + 3; /* past "--\n": "-- Name: ...; Type: ...; Schema: ..." */
    size_t n = 0;
    while (n + 3 < len && n + 1 < sizeof line && name[n] != '\n') {
        line[n] = name[n];
        n++;
    }
    line[n] = '\0';
    const char *type = strstr(line, "; Type: ");
    if (!type)
        return false;
    type += strlen("; Type: ");
    return strncmp(type, "CONSTRAINT;", 11) == 0 || strncmp(type, "INDEX;", 6) == 0;
}

int rt_initcopy_post_table(PGconn *conn, const char *source, const char *schema, const char *table,
                           size_t *built)
{
    static const char mark[] = "\n--\n-- Name: ";
    *built = 0;
    const char *p[] = {source, schema, table};
    PGresult *res = rt_pg_exec(conn, "replica", "reading rt.sync_ddl",
                               "SELECT post FROM rt.sync_ddl WHERE source = $1 AND nspname = $2 "
                               "AND relname = $3 FOR UPDATE",
                               3, p, NULL, 0);
    if (!res)
        return rt_pg_failure(conn);
    const char *script = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    /* The script's header (its SET lines) goes with both halves. */
    rt_buf_t local = {0}, rest = {0};
    size_t nlocal = 0, nrest = 0;
    for (const char *c = script; *c;) {
        const char *next = strstr(c + 1, mark);
        size_t len = next ? (size_t)(next - c) + 1 : strlen(c);
        bool entry = strncmp(c, mark + 1, sizeof mark - 2) == 0;
        if (!entry || s_entry_local(c, len))
            rt_buf_append(&local, c, len);
        if (!entry || !s_entry_local(c, len))
            rt_buf_append(&rest, c, len);
        nlocal += entry && s_entry_local(c, len);
        nrest += entry && !s_entry_local(c, len);
        c += len;
    }
    PQclear(res);
    int rc = rt_buf_error(&local) != RT_OK || rt_buf_error(&rest) != RT_OK ? RT_ENOMEM : RT_OK;
    char err[RT_PG_ERR_MAX] = "";
    if (rc == RT_OK && nlocal)
        rc = s_try_entries(conn, rt_buf_str(&local), false, NULL, err, sizeof err);
    if (rc == RT_OK && nlocal) {
        const char *p4[] = {source, schema, table, rt_buf_str(&rest)};
        rc = nrest ? s_run(conn, "recording what is left of a table's indexes and constraints",
                           "UPDATE rt.sync_ddl SET post = $4 WHERE source = $1 AND nspname = $2 "
                           "AND relname = $3",
                           4, p4, NULL, 0)
                   : s_run(conn, "recording a table's indexes and constraints built",
                           "DELETE FROM rt.sync_ddl WHERE source = $1 AND nspname = $2 "
                           "AND relname = $3",
                           3, p4, NULL, 0);
    }
    if (rc == RT_OK)
        *built = nlocal;
    else if (err[0])
        rt_debug("initial copy: %s.%s: its keys and indexes are left for the copy's end: %s",
                 schema, table, err);
    rt_buf_free(&local);
    rt_buf_free(&rest);
    return rc;
}

/* The keys and indexes of a replica table that can be dropped and built again exactly
 * from their definitions: a valid index of an ordinary table, in the default tablespace,
 * that nothing depends on (no foreign key refers to it, no partitioned index has it
 * attached), not inherited, not the clustered or replica identity index, without comment
 * or statistics target; with its primary key, unique or exclusion constraint if it has
 * one. Row: the index's and the constraint's names (NULL: a plain index), the statement
 * that builds it, the schema-qualified index. */
static const char s_deferrable_sql[] =
    "SELECT ic.relname, con.conname, "
    "CASE WHEN con.oid IS NULL THEN pg_get_indexdef(i.indexrelid) "
    "ELSE format('ALTER TABLE ONLY %s ADD CONSTRAINT %I %s', i.indrelid::regclass, "
    "con.conname, pg_get_constraintdef(con.oid)) END, "
    "i.indexrelid::regclass::text "
    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
    "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid "
    "AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') "
    "WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind = 'r' "
    "AND i.indisvalid AND i.indisready AND i.indislive "
    "AND NOT i.indisclustered AND NOT i.indisreplident AND ic.reltablespace = 0 "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass "
    "AND d.refobjid = i.indexrelid) "
    "AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conindid = i.indexrelid "
    "AND f.oid IS DISTINCT FROM con.oid) "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = i.indexrelid AND d.refclassid = 'pg_constraint'::regclass "
    "AND d.refobjid IS DISTINCT FROM con.oid) "
    "AND NOT EXISTS (SELECT 1 FROM pg_description ds WHERE (ds.classoid = "
    "'pg_class'::regclass AND ds.objoid = i.indexrelid) OR (ds.classoid = "
    "'pg_constraint'::regclass AND ds.objoid = con.oid)) "
    "AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid "
    "AND a.attstattarget >= 0) "
    "AND (con.oid IS NULL OR (con.conislocal AND con.coninhcount = 0)) "
    "ORDER BY con.oid IS NULL, ic.relname";

int rt_initcopy_defer_indexes(PGconn *conn, const char *source, const char *schema,
                              const char *table, size_t *deferred)
{
    *deferred = 0;
    /* Definitions printed with every name qualified, as pg_dump prints them. */
    int rc =
        s_run(conn, "reading a table's indexes", "SET LOCAL search_path = ''", 0, NULL, NULL, 0);
    if (rc != RT_OK)
        return rc;
    const char *p[] = {schema, table};
    PGresult *res =
        rt_pg_exec(conn, "replica", "reading a table's indexes", s_deferrable_sql, 2, p, NULL, 0);
    if (!res)
        return rt_pg_failure(conn);
    int n = PQntuples(res);
    rt_buf_t script = {0}, drop = {0};
    rt_buf_puts(&script, "SET default_tablespace = '';\n"
                         "SELECT pg_catalog.set_config('search_path', '', false);\n");
    for (int r = 0; r < n; r++) {
        bool con = !PQgetisnull(res, r, 1);
        /* An entry as pg_dump prints it: rt_initcopy_post_table takes it by its type. */
        rt_buf_printf(&script, "\n--\n-- Name: %s %s; Type: %s; Schema: %s; Owner: -\n--\n\n%s;\n",
                      table, con ? PQgetvalue(res, r, 1) : PQgetvalue(res, r, 0),
                      con ? "CONSTRAINT" : "INDEX", schema, PQgetvalue(res, r, 2));
        if (!con) {
            rt_buf_printf(&drop, "DROP INDEX %s; ", PQgetvalue(res, r, 3));
            continue;
        }
        /* A constraint's index goes with it. */
        char *sc = rt_pg_ident(conn, schema), *tb = rt_pg_ident(conn, table),
             *cn = rt_pg_ident(conn, PQgetvalue(res, r, 1));
        if (sc && tb && cn)
            rt_buf_printf(&drop, "ALTER TABLE ONLY %s.%s DROP CONSTRAINT %s; ", sc, tb, cn);
        else
            rc = RT_ENOMEM;
        free(sc);
        free(tb);
        free(cn);
    }
    PQclear(res);
    if (rc == RT_OK && (rt_buf_error(&script) != RT_OK || rt_buf_error(&drop) != RT_OK))
        rc = RT_ENOMEM;
    const char *p4[] = {source, schema, table, rt_buf_str(&script)};
    if (rc == RT_OK && n)
        rc = s_run(conn, "recording a table's keys and indexes",
                   "INSERT INTO rt.sync_ddl (source, nspname, relname, ord, post) "
                   "VALUES ($1, $2, $3, (SELECT coalesce(max(ord), 0) + 1 FROM rt.sync_ddl "
                   "WHERE source = $1), $4) ON CONFLICT (source, nspname, relname) "
                   "DO UPDATE SET post = rt.sync_ddl.post || excluded.post",
                   4, p4, NULL, 0);
    if (rc == RT_OK && n)
        rc = s_run(conn, "dropping a table's keys and indexes until its rows are in",
                   rt_buf_str(&drop), 0, NULL, NULL, 0);
    if (rc == RT_OK)
        *deferred = (size_t)n;
    rt_buf_free(&script);
    rt_buf_free(&drop);
    return rc;
}

int rt_initcopy_post_data(PGconn *conn, const char *source, size_t *ran)
{
    *ran = 0;
    const char *p[] = {source};
    PGresult *res = rt_pg_exec(conn, "replica", "reading rt.sync_ddl",
                               "SELECT nspname, relname, post FROM rt.sync_ddl "
                               "WHERE source = $1 ORDER BY ord",
                               1, p, NULL, 0);
    if (!res)
        return rt_pg_failure(conn);
    size_t n = (size_t)PQntuples(res);
    s_item_t *items = calloc(n ? n : 1, sizeof *items);
    int rc = items ? RT_OK : RT_ENOMEM;
    for (size_t i = 0; i < n && rc == RT_OK; i++)
        items[i] = (s_item_t){.schema = PQgetvalue(res, (int)i, 0),
                              .table = PQgetvalue(res, (int)i, 1),
                              .script = PQgetvalue(res, (int)i, 2),
                              .entries = true};
    if (rc == RT_OK && n) {
        int64_t start = rt_mono_ms();
        rc = s_run_all(conn, items, n, "building its keys, indexes and constraints", NULL, NULL);
        if (rc == RT_OK)
            rt_info("initial copy: the rest of the definitions of %zu created relations (the "
                    "keys, indexes and constraints that need other tables, the materialized "
                    "views' rows) built in %.1f s",
                    n, (double)(rt_mono_ms() - start) / 1000.0);
    }
    if (rc == RT_OK)
        rc = s_run(conn, "forgetting rt.sync_ddl", "DELETE FROM rt.sync_ddl WHERE source = $1", 1,
                   p, NULL, 0);
    if (rc == RT_OK)
        *ran = n;
    free(items);
    PQclear(res);
    return rc;
}
