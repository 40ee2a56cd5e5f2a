/* publisher/ddl.c - schema changes on the source (--ddl on): the event triggers that log
 * each DDL command into rt.ddl_log, installed and upgraded when the publisher starts.
 *
 * Why a table and not pg_logical_emit_message: PostgreSQL lets every role call
 * pg_logical_emit_message, so any user of the source could send a message that replicas
 * would run as DDL. Only the owner of rt.ddl_log (the superuser who installed it) and the
 * SECURITY DEFINER trigger functions can write that table, and its rows reach the slot
 * inside their transaction, in order, like a transactional message. The capture turns
 * each insert into a DDL change of the record (schemas/wire.md, "Schema changes").
 *
 * The trigger functions run with the caller's search_path (they record it), so every
 * name and operator in them is qualified with pg_catalog: a caller's objects never take
 * their place. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_int.h"
#include "log.h"
#include "pgconn.h"

/* The version of the objects below; a publisher installs them again when rt.ddl_version()
 * is older (or missing). */
#define S_DDL_VERSION 1
#define S_STR2(x) #x
#define S_STR(x) S_STR2(x)

/* The commands replayed on replicas, as ddl_command_end reports them; DROP commands come
 * from sql_drop. Not CREATE TABLE AS and SELECT INTO: ddl_command_end comes after the new
 * table's rows, which replicate as rows and would reach a replica before its definition
 * (a replica stops at them, asking for the table). */
#define S_TAGS                                                                                     \
    "'CREATE TABLE','ALTER TABLE','CREATE INDEX','ALTER INDEX','CREATE SCHEMA','ALTER SCHEMA',"    \
    "'CREATE TYPE','ALTER TYPE','CREATE DOMAIN','ALTER DOMAIN','CREATE VIEW','ALTER VIEW',"        \
    "'CREATE MATERIALIZED VIEW','ALTER MATERIALIZED VIEW','REFRESH MATERIALIZED VIEW',"            \
    "'CREATE FUNCTION','ALTER FUNCTION','CREATE PROCEDURE','ALTER PROCEDURE',"                     \
    "'CREATE AGGREGATE','ALTER AGGREGATE','CREATE TRIGGER','ALTER TRIGGER','CREATE SEQUENCE',"     \
    "'CREATE EXTENSION','ALTER EXTENSION','CREATE COLLATION','ALTER COLLATION','COMMENT'"
#define S_DROP_TAGS                                                                                \
    "'DROP TABLE','DROP INDEX','DROP SCHEMA','DROP TYPE','DROP DOMAIN','DROP VIEW',"               \
    "'DROP MATERIALIZED VIEW','DROP FUNCTION','DROP PROCEDURE','DROP AGGREGATE','DROP TRIGGER',"   \
    "'DROP SEQUENCE','DROP EXTENSION','DROP COLLATION'"

/* The schemas a replica never takes DDL for (rt's own is left out at the source). */
#define S_PROTECTED(x)                                                                             \
    "(" x " OPERATOR(pg_catalog.~~) 'pg\\_%' OR " x " OPERATOR(pg_catalog.=) "                     \
    "'information_schema')"
#define S_TEMP(x) "(" x " OPERATOR(pg_catalog.~~) 'pg\\_temp%')"

/* In one transaction. The event triggers are created last, and only when missing, so an
 * upgrade replaces the functions they call. */
static const char *const s_install[] = {
    "SET LOCAL client_min_messages = warning",
    "CREATE SCHEMA IF NOT EXISTS rt",
    "CREATE TABLE IF NOT EXISTS rt.ddl_log ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " role name NOT NULL,"
    " tag text NOT NULL,"
    " flags integer NOT NULL,"
    " search_path text NOT NULL,"
    " objects text NOT NULL,"
    " command text NOT NULL)",
    "REVOKE ALL ON rt.ddl_log FROM PUBLIC",
    "COMMENT ON TABLE rt.ddl_log IS 'DDL of this database that rt replicates, one row per "
    "command (written by rt.ddl_capture and rt.ddl_drop; delete old rows at will)'",
    /* The client's statement, without leading blanks and comments: its first word
     * against the tag's tells a command sent by the client from one run inside a
     * function or DO block. */
    "CREATE OR REPLACE FUNCTION rt.ddl_log_row(tag text, objects text, protected boolean)"
    " RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $rt$\n"
    "DECLARE\n"
    "  q text := pg_catalog.current_query();\n"
    "  verb text;\n"
    "  flags integer := 0;\n"
    "  path text;\n"
    "BEGIN\n"
    "  verb := pg_catalog.upper(pg_catalog.substring(pg_catalog.regexp_replace(q,"
    " '^(\\s+|--[^\\n]*(\\n|$)|/\\*([^*]|\\*+[^*/])*\\*+/)+', ''), '^[A-Za-z]+'));\n"
    "  IF COALESCE(verb, '') OPERATOR(pg_catalog.<>) pg_catalog.split_part(tag, ' ', 1) THEN\n"
    "    flags := 1;\n"
    "  END IF;\n"
    "  IF protected THEN\n"
    "    flags := flags OPERATOR(pg_catalog.|) 2;\n"
    "  END IF;\n"
    "  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(s), ', ' ORDER BY o) INTO path\n"
    "    FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS u(s, o)\n"
    "   WHERE NOT " S_TEMP(
        "s") ";\n"
             "  INSERT INTO rt.ddl_log (role, tag, flags, search_path, objects, command)\n"
             "  VALUES (SESSION_USER, tag, flags, COALESCE(path, ''), objects, q);\n"
             "END $rt$",
    "REVOKE ALL ON FUNCTION rt.ddl_log_row(text, text, boolean) FROM PUBLIC",
    /* ddl_command_end: the objects made or changed, without those of temporary schemas,
     * rt's own, and extensions' members. */
    "CREATE OR REPLACE FUNCTION rt.ddl_capture() RETURNS event_trigger LANGUAGE plpgsql"
    " SECURITY DEFINER AS $rt$\n"
    "DECLARE\n"
    "  objs text;\n"
    "  protected boolean;\n"
    "BEGIN\n"
    "  IF NOT (TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY[" S_TAGS "])) THEN\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  SELECT pg_catalog.string_agg(c.object_type OPERATOR(pg_catalog.||) ' '"
    " OPERATOR(pg_catalog.||) c.object_identity, E'\\n'),\n"
    "         pg_catalog.bool_or(" S_PROTECTED(
        "c.schema_name") ")\n"
                         "    INTO objs, protected\n"
                         "    FROM pg_catalog.pg_event_trigger_ddl_commands() AS c\n"
                         "   WHERE NOT c.in_extension AND (c.schema_name IS NULL OR NOT (" S_TEMP(
                             "c.schema_name") " OR c.schema_name OPERATOR(pg_catalog.=) 'rt'))\n"
                                              "     AND NOT (c.object_type OPERATOR(pg_catalog.=) "
                                              "'schema' AND c.object_identity"
                                              " OPERATOR(pg_catalog.=) 'rt');\n"
                                              "  IF objs IS NULL THEN\n"
                                              "    RETURN;\n"
                                              "  END IF;\n"
                                              "  PERFORM rt.ddl_log_row(TG_TAG, objs, protected);\n"
                                              "END $rt$",
    "REVOKE ALL ON FUNCTION rt.ddl_capture() FROM PUBLIC",
    /* sql_drop: the objects a DROP command named (not those dropped with them). */
    "CREATE OR REPLACE FUNCTION rt.ddl_drop() RETURNS event_trigger LANGUAGE plpgsql"
    " SECURITY DEFINER AS $rt$\n"
    "DECLARE\n"
    "  objs text;\n"
    "  protected boolean;\n"
    "BEGIN\n"
    "  IF NOT (TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY[" S_DROP_TAGS "])) THEN\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  SELECT pg_catalog.string_agg(d.object_type OPERATOR(pg_catalog.||) ' '"
    " OPERATOR(pg_catalog.||) d.object_identity, E'\\n'),\n"
    "         pg_catalog.bool_or(" S_PROTECTED(
        "d.schema_name") ")\n"
                         "    INTO objs, protected\n"
                         "    FROM pg_catalog.pg_event_trigger_dropped_objects() AS d\n"
                         "   WHERE d.original AND NOT d.is_temporary\n"
                         "     AND (d.schema_name IS NULL OR NOT (" S_TEMP(
                             "d.schema_name") " OR d.schema_name OPERATOR(pg_catalog.=) 'rt'))\n"
                                              "     AND NOT (d.object_type OPERATOR(pg_catalog.=) "
                                              "'schema' AND d.object_identity"
                                              " OPERATOR(pg_catalog.=) 'rt');\n"
                                              "  IF objs IS NOT NULL THEN\n"
                                              "    PERFORM rt.ddl_log_row(TG_TAG, objs, "
                                              "protected);\n"
                                              "  END IF;\n"
                                              "END $rt$",
    "REVOKE ALL ON FUNCTION rt.ddl_drop() FROM PUBLIC",
    "CREATE OR REPLACE FUNCTION rt.ddl_version() RETURNS integer LANGUAGE sql IMMUTABLE"
    " AS 'SELECT " S_STR(S_DDL_VERSION) "'",
    "DO $rt$ BEGIN\n"
    "  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'rt_ddl') THEN\n"
    "    CREATE EVENT TRIGGER rt_ddl ON ddl_command_end EXECUTE FUNCTION rt.ddl_capture();\n"
    "  END IF;\n"
    "  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'rt_ddl_drop')"
    " THEN\n"
    "    CREATE EVENT TRIGGER rt_ddl_drop ON sql_drop EXECUTE FUNCTION rt.ddl_drop();\n"
    "  END IF;\n"
    "END $rt$",
};

/* The installed version: 0 when missing or an event trigger is missing or disabled, -1
 * on a query failure (logged). Read from the catalogs only, which every role may read
 * (schema rt is not usable by others). */
static int s_installed(PGconn *conn)
{
    PGresult *res = rt_pg_exec(
        conn, "source", "looking up rt's DDL capture",
        "SELECT (SELECT p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = 'rt' AND p.proname = 'ddl_version'), "
        "(SELECT count(*) FROM pg_catalog.pg_event_trigger "
        "WHERE evtname IN ('rt_ddl', 'rt_ddl_drop') AND evtenabled <> 'D')",
        0, NULL, NULL, 0);
    if (!res)
        return -1;
    int v = 0;
    if (!PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 1), "2") == 0 &&
        sscanf(PQgetvalue(res, 0, 0), "SELECT %d", &v) != 1)
        v = 0;
    PQclear(res);
    return v;
}

static bool s_superuser(PGconn *conn)
{
    PGresult *res = rt_pg_exec(conn, "source", "checking the role",
                               "SELECT rolsuper FROM pg_catalog.pg_roles "
                               "WHERE rolname = current_user",
                               0, NULL, NULL, 0);
    bool super = res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return super;
}

/* With a publication that is not FOR ALL TABLES, rt.ddl_log must be in it. */
static int s_publish_log(PGconn *conn, const char *publication, bool super)
{
    const char *params[] = {publication};
    PGresult *res = rt_pg_exec(conn, "source", "looking up rt.ddl_log in the publication",
                               "SELECT p.puballtables, EXISTS (SELECT FROM "
                               "pg_catalog.pg_publication_tables t WHERE t.pubname = p.pubname "
                               "AND t.schemaname = 'rt' AND t.tablename = 'ddl_log') "
                               "FROM pg_catalog.pg_publication p WHERE p.pubname = $1",
                               1, params, NULL, 0);
    if (!res)
        return RT_EDB;
    bool in = PQntuples(res) == 1 &&
              (strcmp(PQgetvalue(res, 0, 0), "t") == 0 || strcmp(PQgetvalue(res, 0, 1), "t") == 0);
    PQclear(res);
    if (in)
        return RT_OK;
    char *ident = rt_pg_ident(conn, publication);
    if (!ident)
        return RT_ENOMEM;
    char sql[512];
    snprintf(sql, sizeof sql, "ALTER PUBLICATION %s ADD TABLE rt.ddl_log", ident);
    free(ident);
    if (!super || rt_pg_run(conn, "source", "adding rt.ddl_log to the publication", sql, 0, NULL,
                            NULL, 0) != RT_OK) {
        rt_error("source: --ddl on needs rt.ddl_log in publication %s: run ALTER PUBLICATION "
                 "... ADD TABLE rt.ddl_log as its owner, or start with --ddl off",
                 publication);
        return RT_EINVAL;
    }
    rt_info("added rt.ddl_log to publication %s: DDL reaches the replicas through it", publication);
    return RT_OK;
}

int rt_ddl_install(PGconn *conn, const char *publication)
{
    int v = s_installed(conn);
    if (v < 0)
        return RT_EDB;
    bool super = s_superuser(conn);
    if (v >= S_DDL_VERSION) {
        return s_publish_log(conn, publication, super);
    }
    if (!super) {
        rt_error("source: --ddl on: rt's DDL capture (schema rt, event triggers rt_ddl and "
                 "rt_ddl_drop) is %s, and creating event triggers needs a superuser: start "
                 "rt-publisher once with a superuser's connection string, or with --ddl off",
                 v == 0 ? "missing or disabled" : "of an older version");
        return RT_EINVAL;
    }
    if (rt_pg_run(conn, "source", "beginning the DDL capture's installation", "BEGIN", 0, NULL,
                  NULL, 0) != RT_OK)
        return RT_EDB;
    for (size_t i = 0; i < sizeof s_install / sizeof s_install[0]; i++) {
        if (rt_pg_run(conn, "source", "installing rt's DDL capture", s_install[i], 0, NULL, NULL,
                      0) != RT_OK) {
            return rt_pg_run(conn, "source", "rolling back", "ROLLBACK", 0, NULL, NULL, 0) == RT_EIO
                       ? RT_EIO
                       : RT_EDB;
        }
    }
    if (rt_pg_run(conn, "source", "committing the DDL capture", "COMMIT", 0, NULL, NULL, 0) !=
        RT_OK)
        return RT_EDB;
    rt_info("source: %s rt's DDL capture (event triggers rt_ddl and rt_ddl_drop, table "
            "rt.ddl_log), version %d",
            v == 0 ? "installed" : "upgraded", S_DDL_VERSION);
    return s_publish_log(conn, publication, super);
}
