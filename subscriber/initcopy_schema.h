/* subscriber/initcopy_schema.h - --create-tables: the replica's missing tables created from
 * the source's definitions, their keys and indexes built after the copy. */
#ifndef RT_INITCOPY_SCHEMA_H
#define RT_INITCOPY_SCHEMA_H

#include <libpq-fe.h>

#include "rt.h"
#include "wire.h"

/* The tables of a snapshot (ntables entries, parts of one table counted once) that the
 * replica has no relation of that name for, as a SCHEMA request (names only, malloc'd,
 * rt_sync_ddl_free). RT_OK with *missing NULL when none; RT_EDB, RT_EIO, RT_ENOMEM. */
int rt_initcopy_missing(PGconn *conn, const rt_sync_table_t *tables, size_t ntables,
                        rt_sync_ddl_t **missing, size_t *nmissing) RT_WUR;

/* Creates, in one transaction on conn, the objects of the support script (pg_dump entries:
 * types, functions, extensions... the tables may use; those the replica has are kept, and
 * one that fails is logged and left out) and the tables of a SCHEMA_READY (n entries, each
 * root first) still missing, with their schemas, and records what runs after their rows in
 * rt.sync_ddl for source. conn is left with the search_path the definitions set: give it a
 * connection of its own. RT_OK with *created; RT_EINVAL when a table's definition fails on
 * the replica (logged, nothing created); RT_EDB, RT_EIO, RT_ENOMEM. */
int rt_initcopy_create_tables(PGconn *conn, const char *source, const char *support,
                              const rt_sync_ddl_t *ddl, size_t n, size_t *created) RT_WUR;

/* Within the caller's transaction (the one that empties the table before its copy): drops
 * the keys and indexes of replica table schema.table that can be built again exactly from
 * their definitions (see s_deferrable_sql), recording those in rt.sync_ddl for source, so
 * that the copy loads a table without indexes and builds them once over its rows
 * (rt_initcopy_post_table). RT_OK with *deferred; RT_EDB, RT_EIO, RT_ENOMEM. The rest of
 * the transaction has search_path ''. */
int rt_initcopy_defer_indexes(PGconn *conn, const char *source, const char *schema,
                              const char *table, size_t *deferred) RT_WUR;

/* Within the caller's transaction: builds the keys and indexes that rt.sync_ddl holds for
 * one table of source (primary key, unique and exclusion constraints, indexes: they need
 * that table alone) and keeps the rest (foreign keys, triggers, index attachments: they
 * need other tables) for rt_initcopy_post_data. RT_OK with *built, the entries run (0: none
 * to run); RT_EDB when one fails (the caller rolls back: the end runs it again, and says
 * why); RT_EIO, RT_ENOMEM. The search_path of conn is changed. */
int rt_initcopy_post_table(PGconn *conn, const char *source, const char *schema, const char *table,
                           size_t *built) RT_WUR;

/* Within the caller's transaction: runs what rt.sync_ddl holds for source (the keys,
 * indexes, constraints and triggers of the tables created) and forgets it. RT_OK with
 * *ran; RT_EINVAL when one fails (logged); RT_EDB, RT_EIO, RT_ENOMEM. The search_path of
 * conn is changed. */
int rt_initcopy_post_data(PGconn *conn, const char *source, size_t *ran) RT_WUR;

#endif
