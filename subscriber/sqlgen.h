/* subscriber/sqlgen.h - pure change -> SQL generation (knows nothing of libpq). */
#ifndef RT_SQLGEN_H
#define RT_SQLGEN_H

#include "rt.h"
#include "wire.h"

/* Where a statement parameter takes its value from. */
typedef struct {
    uint8_t from_old; /* 1: the change's old row image; 0: its new row image */
    uint32_t col;     /* column index in the relation */
} rt_param_t;

/* The SQL of one change shape, with its parameter map. */
typedef struct {
    char *sql;          /* malloc'd statement text with $1..$n */
    uint32_t nparams;   /* parameters */
    rt_param_t *params; /* malloc'd, nparams entries */
} rt_stmt_t;

/* Writes "schema"."table" with identifiers quoted as PostgreSQL's quote_ident does
 * (always quoted; embedded '"' doubled). Returns a malloc'd string or NULL. */
char *rt_sqlgen_qualified(const char *schema, const char *table);

/* Builds the statement for a change of rel:
 *  'I': INSERT INTO t (all columns) VALUES (...)
 *  'U': UPDATE t SET <new columns that are not RT_VAL_UNCHANGED> WHERE <identity>
 *  'D': DELETE FROM t WHERE <identity>
 * The identity is: the key columns of the old image when old_kind == 'K'; every
 * column of the old image with IS NOT DISTINCT FROM (one row only, via ctid, for
 * duplicate rows; types without equality compared as text) when old_kind == 'O';
 * the key columns of the new image when old_kind == 0 (UPDATE only).
 * newvals (for 'U') decides which columns are unchanged; it may be NULL otherwise.
 * RT_EINVAL if the change cannot be expressed (no key columns, no columns to set
 * and nothing else to do is NOT an error: the SET then re-assigns the first key). */
int rt_sqlgen_change(const rt_relation_t *rel, char op, char old_kind, const rt_value_t *newvals,
                     rt_stmt_t *out) RT_WUR;

/* Makes stmt, an UPDATE or DELETE of rt_sqlgen_change, fail unless it touches exactly
 * one row, so that a COMMIT queued behind it in the same pipeline segment is aborted
 * with it: WITH rt_c AS (<stmt> RETURNING 1) SELECT 1 / (count(*) = 1)::int FROM rt_c,
 * which fails with SQLSTATE 22012 (division_by_zero) on any other count. */
int rt_sqlgen_checked(rt_stmt_t *stmt) RT_WUR;

/* Builds a statement of the versions that conflicts are decided by (last_write_wins,
 * keep_local), what being:
 *  'R': the row's version: SELECT v.* FROM (SELECT xmin AS rt_x FROM t WHERE <identity>
 *       LIMIT 1 FOR UPDATE) r, LATERAL (...) v, one row (commit time in PostgreSQL
 *       epoch microseconds, origin id, origin name: NULL when unknown) when the row is
 *       there, none when it is missing; the row stays locked for the write that follows;
 *  'S': the version of the tombstone of the change's key in rt.<tomb> (same columns);
 *  'W': INSERT of the change's key into rt.<tomb> (ON CONFLICT: the tombstone is
 *       renewed by this transaction).
 * The identity is as in rt_sqlgen_change (old_kind 0: the key of the new image, also
 * for an INSERT). Tombstones need key columns (not old_kind 'O'). */
int rt_sqlgen_version(const rt_relation_t *rel, char what, char old_kind, const char *tomb,
                      rt_stmt_t *out) RT_WUR;

/* Builds the TRUNCATE of n relations, flags as in pgoutput (1 CASCADE, 2 RESTART
 * IDENTITY): a DO block that truncates them in one statement, each ONLY (as the source
 * did) unless the replica's table is partitioned (a leaf on the source, say), which
 * PostgreSQL refuses to truncate ONLY: then its partitions go with it, as in
 * PostgreSQL's own apply. *sql is malloc'd. */
int rt_sqlgen_truncate(const rt_relation_t *const *rels, uint32_t n, uint8_t flags,
                       char **sql) RT_WUR;

/* A short key for the shape of a change, for a prepared-statement cache: the
 * relation's schema/table/columns, op (I, U, D, or a version statement's R, S, W),
 * old_kind and the unchanged-column set.
 * Writes a NUL-terminated key into buf; returns its length, or RT_EINVAL if size
 * is too small. */
int rt_sqlgen_shape_key(const rt_relation_t *rel, char op, char old_kind, const rt_value_t *newvals,
                        char *buf, size_t size) RT_WUR;

/* Builds "COPY t ("c1", ...) FROM STDIN" (text format) for the INSERTs of rel: every
 * column, in the relation's order. RT_EINVAL for a relation without columns. *sql is
 * malloc'd. */
int rt_sqlgen_copy(const rt_relation_t *rel, char **sql) RT_WUR;

/* Bytes rt_sqlgen_copy_row writes at most for the n values (each byte may double,
 * a NULL is two bytes, plus the separators and the line end). */
size_t rt_sqlgen_copy_row_bound(const rt_value_t *vals, uint32_t n);

/* Writes the n values as one line of COPY text format into out: tab-separated,
 * newline-terminated, NULL as \N, and backslash, tab, newline and carriage return
 * escaped as \\, \t, \n and \r. *len gets the bytes written. RT_EPROTO if a value
 * is RT_VAL_UNCHANGED (or has no data), RT_EINVAL if size is below
 * rt_sqlgen_copy_row_bound(vals, n). */
int rt_sqlgen_copy_row(const rt_value_t *vals, uint32_t n, char *out, size_t size,
                       size_t *len) RT_WUR;

void rt_stmt_clear(rt_stmt_t *stmt);

#endif
