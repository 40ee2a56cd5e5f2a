/* subscriber/sqlgen.c - pure change -> SQL generation: statement text and parameter map. */
#include "sqlgen.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL's wire protocol counts parameters in an int16. */
#define S_MAX_PARAMS 65535u

/* First OID of objects created after initdb (FirstNormalObjectId): user types. */
#define S_FIRST_USER_OID 16384u

/* A growable string with a sticky out-of-memory flag. */
typedef struct {
    char *data;  /* NUL-terminated once anything was written */
    size_t len;  /* bytes used, without the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed; everything after is dropped */
} s_buf_t;

/* A statement under construction: its text and parameter map. */
typedef struct {
    s_buf_t text;        /* SQL text */
    rt_param_t *params;  /* capacity max_params */
    uint32_t nparams;    /* parameters written */
    uint32_t max_params; /* capacity of params */
} s_gen_t;

static void s_buf_reserve(s_buf_t *b, size_t more)
{
    if (b->failed)
        return;
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) {
        b->failed = true;
        return;
    }
    b->data = data;
    b->cap = cap;
}

static void s_buf_put(s_buf_t *b, const char *s, size_t n)
{
    s_buf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void s_buf_str(s_buf_t *b, const char *s)
{
    s_buf_put(b, s, strlen(s));
}

static void s_buf_printf(s_buf_t *b, const char *fmt, ...) RT_PRINTF(2, 3);

static void s_buf_printf(s_buf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = true;
        return;
    }
    s_buf_put(b, tmp, (size_t)n);
}

/* Appends an identifier as quote_ident would with every identifier quoted. */
static void s_buf_ident(s_buf_t *b, const char *name)
{
    s_buf_put(b, "\"", 1);
    for (const char *p = name; *p; p++) {
        const char *q = strchr(p, '"');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        s_buf_put(b, p, n);
        if (!q)
            break;
        s_buf_put(b, "\"\"", 2);
        p = q;
    }
    s_buf_put(b, "\"", 1);
}

/* Appends "schema"."table"; pgoutput sends pg_catalog as the empty schema name. */
static void s_buf_qualified(s_buf_t *b, const char *schema, const char *table)
{
    s_buf_ident(b, schema[0] ? schema : "pg_catalog");
    s_buf_put(b, ".", 1);
    s_buf_ident(b, table);
}

/* Appends the next parameter reference $n and records where its value comes from. */
static void s_param(s_gen_t *g, bool from_old, uint32_t col)
{
    if (g->nparams >= g->max_params) {
        g->text.failed = true;
        return;
    }
    g->params[g->nparams].from_old = from_old ? 1 : 0;
    g->params[g->nparams].col = col;
    g->nparams++;
    s_buf_printf(&g->text, "$%" PRIu32, g->nparams);
}

/* Types without a btree equality operator (and user-defined types, whose
 * operators are unknown here) are compared through their text form. */
static bool s_compare_as_text(uint32_t typoid)
{
    switch (typoid) {
    case 114:  /* json */
    case 199:  /* json[] */
    case 142:  /* xml */
    case 143:  /* xml[] */
    case 600:  /* point */
    case 1017: /* point[] */
    case 601:  /* lseg */
    case 1018: /* lseg[] */
    case 602:  /* path */
    case 1019: /* path[] */
    case 603:  /* box */
    case 1020: /* box[] */
    case 604:  /* polygon */
    case 1027: /* polygon[] */
    case 628:  /* line */
    case 629:  /* line[] */
    case 718:  /* circle */
    case 719: /* circle[] */ return true;
    default: return typoid >= S_FIRST_USER_OID;
    }
}

/* Appends one identity condition: "c" = $n, or "c" IS NOT DISTINCT FROM $n when
 * nulls are possible (REPLICA IDENTITY FULL). */
static void s_condition(s_gen_t *g, const rt_column_t *col, uint32_t i, bool from_old,
                        bool null_safe)
{
    bool as_text = s_compare_as_text(col->typoid);
    s_buf_ident(&g->text, col->name);
    if (as_text)
        s_buf_str(&g->text, "::text");
    s_buf_str(&g->text, null_safe ? " IS NOT DISTINCT FROM " : " = ");
    s_param(g, from_old, i);
    if (as_text)
        s_buf_str(&g->text, "::text");
}

/* Appends the conditions locating the row: the key columns ('K' from the old image,
 * 0 from the new one) or every column of the old image ('O'). Returns false when
 * there is nothing to write (no key columns, or a FULL relation without columns). */
static bool s_identity(s_gen_t *g, const rt_relation_t *rel, char old_kind)
{
    bool full = old_kind == 'O';
    bool from_old = old_kind != 0;
    bool any = false;
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (!full && !rel->cols[i].key)
            continue;
        if (any)
            s_buf_str(&g->text, " AND ");
        s_condition(g, &rel->cols[i], i, from_old, full);
        any = true;
    }
    return any;
}

/* Appends the WHERE clause. For REPLICA IDENTITY FULL, duplicate rows are possible,
 * so exactly one is chosen by its physical address; tableoid is part of it because
 * ctids repeat across the partitions (or inheritance children) of a table. */
static void s_where(s_gen_t *g, const rt_relation_t *rel, char old_kind)
{
    if (old_kind != 'O') {
        s_buf_str(&g->text, " WHERE ");
        (void)s_identity(g, rel, old_kind);
        return;
    }
    s_buf_str(&g->text, " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM ");
    s_buf_qualified(&g->text, rel->schema, rel->table);
    if (rel->ncols > 0)
        s_buf_str(&g->text, " WHERE ");
    (void)s_identity(g, rel, old_kind);
    s_buf_str(&g->text, " LIMIT 1)");
}

static bool s_unchanged(const rt_value_t *newvals, uint32_t i)
{
    return newvals && newvals[i].kind == RT_VAL_UNCHANGED;
}

static void s_insert(s_gen_t *g, const rt_relation_t *rel)
{
    s_buf_str(&g->text, "INSERT INTO ");
    s_buf_qualified(&g->text, rel->schema, rel->table);
    if (rel->ncols == 0) {
        s_buf_str(&g->text, " DEFAULT VALUES");
        return;
    }
    s_buf_str(&g->text, " (");
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (i > 0)
            s_buf_str(&g->text, ", ");
        s_buf_ident(&g->text, rel->cols[i].name);
    }
    /* The source's values, identity columns included: a replica column GENERATED ALWAYS
     * AS IDENTITY takes them only so (the clause changes nothing for other tables). */
    s_buf_str(&g->text, ") OVERRIDING SYSTEM VALUE VALUES (");
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (i > 0)
            s_buf_str(&g->text, ", ");
        s_param(g, false, i);
    }
    s_buf_str(&g->text, ")");
}

/* SET lists every column whose new value was sent. Key columns only when the key changed
 * (an old image came: the row moves); else their new values are those the WHERE matches,
 * and a replica key column GENERATED ALWAYS AS IDENTITY refuses any SET. When no column
 * is left, the SET re-assigns the first column from the same image the WHERE reads it
 * from: a no-op update that still reports whether the row was found. */
static void s_update(s_gen_t *g, const rt_relation_t *rel, char old_kind, const rt_value_t *newvals)
{
    s_buf_str(&g->text, "UPDATE ");
    s_buf_qualified(&g->text, rel->schema, rel->table);
    s_buf_str(&g->text, " SET ");
    bool any = false;
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (s_unchanged(newvals, i) || (old_kind == 0 && rel->cols[i].key))
            continue;
        if (any)
            s_buf_str(&g->text, ", ");
        s_buf_ident(&g->text, rel->cols[i].name);
        s_buf_str(&g->text, " = ");
        s_param(g, false, i);
        any = true;
    }
    if (!any) {
        /* An unchanged TOAST column set to itself, else the first key column. */
        uint32_t first = 0;
        bool itself = false;
        for (uint32_t i = 0; i < rel->ncols && old_kind != 'O' && !itself; i++)
            if (!rel->cols[i].key && s_unchanged(newvals, i)) {
                first = i;
                itself = true;
            }
        if (old_kind != 'O' && !itself)
            while (!rel->cols[first].key)
                first++;
        s_buf_ident(&g->text, rel->cols[first].name);
        s_buf_str(&g->text, " = ");
        if (itself)
            s_buf_ident(&g->text, rel->cols[first].name);
        else
            s_param(g, old_kind != 0, first);
    }
    s_where(g, rel, old_kind);
}

static void s_delete(s_gen_t *g, const rt_relation_t *rel, char old_kind)
{
    s_buf_str(&g->text, "DELETE FROM ");
    s_buf_qualified(&g->text, rel->schema, rel->table);
    s_where(g, rel, old_kind);
}

/* Checks that rel is a usable descriptor. */
static bool s_rel_valid(const rt_relation_t *rel)
{
    if (!rel || !rel->schema || !rel->table || (rel->ncols > 0 && !rel->cols))
        return false;
    for (uint32_t i = 0; i < rel->ncols; i++)
        if (!rel->cols[i].name)
            return false;
    return true;
}

static bool s_has_key(const rt_relation_t *rel)
{
    for (uint32_t i = 0; i < rel->ncols; i++)
        if (rel->cols[i].key)
            return true;
    return false;
}

/* Checks op and old_kind against the relation: whether the change can be written. */
static int s_check_change(const rt_relation_t *rel, char op, char old_kind)
{
    if (!s_rel_valid(rel))
        return RT_EINVAL;
    switch (op) {
    case 'I': return RT_OK;
    case 'U':
        if (old_kind != 0 && old_kind != 'K' && old_kind != 'O')
            return RT_EINVAL;
        break;
    case 'D':
        if (old_kind != 'K' && old_kind != 'O')
            return RT_EINVAL;
        break;
    default: return RT_EINVAL;
    }
    if (old_kind == 'O')
        return op == 'U' && rel->ncols == 0 ? RT_EINVAL : RT_OK;
    return s_has_key(rel) ? RT_OK : RT_EINVAL;
}

char *rt_sqlgen_qualified(const char *schema, const char *table)
{
    if (!schema || !table)
        return NULL;
    s_buf_t b = {0};
    s_buf_qualified(&b, schema, table);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

int rt_sqlgen_change(const rt_relation_t *rel, char op, char old_kind, const rt_value_t *newvals,
                     rt_stmt_t *out)
{
    if (!out)
        return RT_EINVAL;
    memset(out, 0, sizeof *out);
    int rc = s_check_change(rel, op, old_kind);
    if (rc != RT_OK)
        return rc;
    /* At most every column twice (SET and a FULL identity), plus one no-op SET. */
    uint64_t max_params = 2 * (uint64_t)rel->ncols + 1;
    if (max_params > S_MAX_PARAMS)
        return RT_EINVAL;

    s_gen_t g = {0};
    g.max_params = (uint32_t)max_params;
    g.params = calloc(g.max_params, sizeof *g.params);
    if (!g.params)
        return RT_ENOMEM;

    if (op == 'I')
        s_insert(&g, rel);
    else if (op == 'U')
        s_update(&g, rel, old_kind, newvals);
    else
        s_delete(&g, rel, old_kind);

    if (g.text.failed) {
        rc = RT_ENOMEM;
        goto cleanup;
    }
    out->sql = g.text.data;
    out->nparams = g.nparams;
    out->params = g.params;
    return RT_OK;

cleanup:
    free(g.text.data);
    free(g.params);
    return rc;
}

/* The LATERAL part of a version read: the commit time (PostgreSQL epoch microseconds),
 * origin id and origin name of transaction r.rt_x (all NULL while it is in progress or
 * older than the commit timestamps kept). */
static const char *const s_version_tail =
    ", LATERAL (SELECT ((extract(epoch FROM c.\"timestamp\") - 946684800) * 1000000)::bigint, "
    "c.roident, o.roname FROM pg_catalog.pg_xact_commit_timestamp_origin(r.rt_x) c "
    "LEFT JOIN pg_catalog.pg_replication_origin o ON o.roident = c.roident) v";

/* Appends the key columns of rel, quoted and comma-separated. */
static void s_key_list(s_gen_t *g, const rt_relation_t *rel)
{
    bool any = false;
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (!rel->cols[i].key)
            continue;
        if (any)
            s_buf_str(&g->text, ", ");
        s_buf_ident(&g->text, rel->cols[i].name);
        any = true;
    }
}

int rt_sqlgen_version(const rt_relation_t *rel, char what, char old_kind, const char *tomb,
                      rt_stmt_t *out)
{
    if (!out)
        return RT_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s_rel_valid(rel) || (what != 'R' && what != 'S' && what != 'W') ||
        (old_kind != 0 && old_kind != 'K' && old_kind != 'O'))
        return RT_EINVAL;
    if (what != 'R' && (old_kind == 'O' || !tomb || !s_has_key(rel)))
        return RT_EINVAL;
    if (what == 'R' && (old_kind == 'O' ? rel->ncols == 0 : !s_has_key(rel)))
        return RT_EINVAL;
    if ((uint64_t)rel->ncols > S_MAX_PARAMS)
        return RT_EINVAL;

    s_gen_t g = {0};
    g.max_params = rel->ncols;
    g.params = calloc(g.max_params ? g.max_params : 1, sizeof *g.params);
    if (!g.params)
        return RT_ENOMEM;
    if (what == 'W') {
        s_buf_str(&g.text, "INSERT INTO rt.");
        s_buf_ident(&g.text, tomb);
        s_buf_str(&g.text, " (");
        s_key_list(&g, rel);
        s_buf_str(&g.text, ") VALUES (");
        bool any = false;
        for (uint32_t i = 0; i < rel->ncols; i++) {
            if (!rel->cols[i].key)
                continue;
            if (any)
                s_buf_str(&g.text, ", ");
            s_param(&g, old_kind != 0, i);
            any = true;
        }
        s_buf_str(&g.text, ") ON CONFLICT (");
        s_key_list(&g, rel);
        s_buf_str(&g.text, ") DO UPDATE SET rt_xid = pg_catalog.pg_current_xact_id()");
    } else {
        if (what == 'R') {
            s_buf_str(&g.text, "SELECT v.* FROM (SELECT xmin AS rt_x FROM ");
            s_buf_qualified(&g.text, rel->schema, rel->table);
        } else {
            s_buf_str(&g.text, "SELECT v.* FROM (SELECT rt_xid::xid AS rt_x FROM rt.");
            s_buf_ident(&g.text, tomb);
        }
        s_buf_str(&g.text, " WHERE ");
        (void)s_identity(&g, rel, old_kind);
        s_buf_str(&g.text, what == 'R' ? " LIMIT 1 FOR UPDATE) r" : ") r");
        s_buf_str(&g.text, s_version_tail);
    }
    if (g.text.failed) {
        free(g.text.data);
        free(g.params);
        return RT_ENOMEM;
    }
    out->sql = g.text.data;
    out->nparams = g.nparams;
    out->params = g.params;
    return RT_OK;
}

/* Appends name as a string literal: in single quotes, each one doubled. */
static void s_buf_literal(s_buf_t *b, const char *name)
{
    s_buf_put(b, "'", 1);
    for (const char *p = name; *p; p++)
        s_buf_put(b, *p == '\'' ? "''" : p, 1 + (*p == '\''));
    s_buf_put(b, "'", 1);
}

int rt_sqlgen_truncate(const rt_relation_t *const *rels, uint32_t n, uint8_t flags, char **sql)
{
    if (!sql)
        return RT_EINVAL;
    *sql = NULL;
    if (!rels || n == 0)
        return RT_EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (!rels[i] || !rels[i]->schema || !rels[i]->table)
            return RT_EINVAL;

    /* The tables' names, quoted, each as a literal. */
    s_buf_t names = {0}, one = {0};
    for (uint32_t i = 0; i < n; i++) {
        one.len = 0;
        s_buf_qualified(&one, rels[i]->schema, rels[i]->table);
        if (i > 0)
            s_buf_str(&names, ", ");
        if (!one.failed)
            s_buf_literal(&names, one.data);
    }
    free(one.data);
    if (one.failed || names.failed) {
        free(names.data);
        return RT_ENOMEM;
    }
    /* A dollar quote whose tag the names do not hold. */
    char tag[24] = "$rt$";
    for (unsigned k = 1; strstr(names.data, tag); k++)
        snprintf(tag, sizeof tag, "$rt%u$", k);

    s_buf_t b = {0};
    s_buf_printf(&b, "DO %sDECLARE s text; BEGIN ", tag);
    s_buf_str(&b, "SELECT pg_catalog.string_agg(CASE c.relkind WHEN 'p' THEN '' ELSE 'ONLY ' END "
                  "|| u.name, ', ' ORDER BY u.ord) INTO s FROM pg_catalog.unnest(ARRAY[");
    s_buf_str(&b, names.data);
    s_buf_str(&b, "]::text[]) WITH ORDINALITY AS u(name, ord) JOIN pg_catalog.pg_class c "
                  "ON c.oid = u.name::pg_catalog.regclass; "
                  "EXECUTE 'TRUNCATE TABLE ' || s");
    if (flags & 3)
        s_buf_printf(&b, " || '%s%s'", flags & 2 ? " RESTART IDENTITY" : "",
                     flags & 1 ? " CASCADE" : "");
    s_buf_printf(&b, "; END%s", tag);
    free(names.data);
    if (b.failed) {
        free(b.data);
        return RT_ENOMEM;
    }
    *sql = b.data;
    return RT_OK;
}

/* ---- COPY: statement and text-format rows. */

int rt_sqlgen_copy(const rt_relation_t *rel, char **sql)
{
    if (!sql)
        return RT_EINVAL;
    *sql = NULL;
    if (!s_rel_valid(rel) || rel->ncols == 0)
        return RT_EINVAL;
    s_buf_t b = {0};
    s_buf_str(&b, "COPY ");
    s_buf_qualified(&b, rel->schema, rel->table);
    s_buf_str(&b, " (");
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (i > 0)
            s_buf_str(&b, ", ");
        s_buf_ident(&b, rel->cols[i].name);
    }
    s_buf_str(&b, ") FROM STDIN");
    if (b.failed) {
        free(b.data);
        return RT_ENOMEM;
    }
    *sql = b.data;
    return RT_OK;
}

#define S_ONES 0x0101010101010101ull
#define S_HIGHS 0x8080808080808080ull

/* Non-zero when one of the 8 bytes of x is b. */
static uint64_t s_has_byte(uint64_t x, unsigned char b)
{
    uint64_t y = x ^ (S_ONES * b);
    return (y - S_ONES) & ~y & S_HIGHS;
}

/* Non-zero when one of the 8 bytes of x is one COPY text format escapes. */
static uint64_t s_copy_special8(uint64_t x)
{
    return s_has_byte(x, '\\') | s_has_byte(x, '\t') | s_has_byte(x, '\n') | s_has_byte(x, '\r');
}

size_t rt_sqlgen_copy_row_bound(const rt_value_t *vals, uint32_t n)
{
    size_t total = (size_t)n + 1;
    for (uint32_t i = 0; i < n; i++)
        total += vals[i].kind == RT_VAL_TEXT ? 2 * (size_t)vals[i].len : 2;
    return total;
}

int rt_sqlgen_copy_row(const rt_value_t *vals, uint32_t n, char *out, size_t size, size_t *len)
{
    size_t w = 0;
    *len = 0;
    if (!out || (n > 0 && !vals) || size < rt_sqlgen_copy_row_bound(vals, n))
        return RT_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        const rt_value_t *v = &vals[i];
        if (v->kind == RT_VAL_NULL) {
            if (i > 0)
                out[w++] = '\t';
            out[w++] = '\\';
            out[w++] = 'N';
            continue;
        }
        if (v->kind != RT_VAL_TEXT || !v->data)
            return RT_EPROTO;
        if (i > 0)
            out[w++] = '\t';
        const unsigned char *p = (const unsigned char *)v->data;
        uint32_t j = 0;
        while (j < v->len) {
            /* Eight bytes at a time while none of them needs escaping. */
            uint64_t x;
            if (v->len - j >= 8 && (memcpy(&x, p + j, 8), !s_copy_special8(x))) {
                memcpy(out + w, p + j, 8);
                w += 8;
                j += 8;
                continue;
            }
            uint32_t end = v->len - j >= 8 ? j + 8 : v->len;
            for (; j < end; j++) {
                unsigned char c = p[j];
                if (c > '\\' || (c != '\\' && c != '\t' && c != '\n' && c != '\r')) {
                    out[w++] = (char)c;
                    continue;
                }
                out[w++] = '\\';
                out[w++] = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
            }
        }
    }
    out[w++] = '\n';
    *len = w;
    return RT_OK;
}

/* ---- Shape keys: a 128-bit hash of everything the statement text depends on. */

/* Two 64-bit FNV-1a hashes with different offset bases, fed the same bytes. */
typedef struct {
    uint64_t h1;
    uint64_t h2;
} s_hash_t;

#define S_FNV_PRIME 0x00000100000001B3ull

static void s_hash_bytes(s_hash_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h->h1 = (h->h1 ^ p[i]) * S_FNV_PRIME;
        h->h2 = (h->h2 ^ (unsigned char)(p[i] + 0x5b)) * S_FNV_PRIME;
    }
}

/* Strings are hashed with their NUL, so consecutive strings cannot run together. */
static void s_hash_str(s_hash_t *h, const char *s)
{
    s_hash_bytes(h, s, strlen(s) + 1);
}

static void s_hash_u32(s_hash_t *h, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    s_hash_bytes(h, b, sizeof b);
}

/* The key is "<op><kind>" ('K', 'O' or 'N' for none) then 32 hex digits of a
 * 128-bit hash over schema, table, ncols, each column's name, type and key flag,
 * op, old_kind and, for updates, the unchanged-column set: 34 characters, short
 * enough for a prepared statement name. Two different shapes share a key only by
 * a hash collision, about n^2 / 2^129 for n shapes in one cache. */
int rt_sqlgen_shape_key(const rt_relation_t *rel, char op, char old_kind, const rt_value_t *newvals,
                        char *buf, size_t size)
{
    if (!buf || !s_rel_valid(rel) || op == '\0' || !strchr("IUDRSW", op) ||
        (old_kind != 0 && old_kind != 'K' && old_kind != 'O'))
        return RT_EINVAL;

    s_hash_t h = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    s_hash_str(&h, rel->schema);
    s_hash_str(&h, rel->table);
    s_hash_u32(&h, rel->ncols);
    for (uint32_t i = 0; i < rel->ncols; i++) {
        s_hash_str(&h, rel->cols[i].name);
        s_hash_u32(&h, rel->cols[i].typoid);
        s_hash_bytes(&h, rel->cols[i].key ? "k" : "-", 1);
    }
    char kind = old_kind ? old_kind : 'N';
    s_hash_bytes(&h, &op, 1);
    s_hash_bytes(&h, &kind, 1);
    if (op == 'U') {
        /* One bit per column, flushed every 8 columns. */
        unsigned char bits = 0;
        for (uint32_t i = 0; i < rel->ncols; i++) {
            if (s_unchanged(newvals, i))
                bits |= (unsigned char)(1u << (i % 8));
            if (i % 8 == 7 || i + 1 == rel->ncols) {
                s_hash_bytes(&h, &bits, 1);
                bits = 0;
            }
        }
    }

    int n = snprintf(buf, size, "%c%c%016" PRIx64 "%016" PRIx64, op, kind, h.h1, h.h2);
    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return RT_EINVAL;
    }
    return n;
}

int rt_sqlgen_checked(rt_stmt_t *stmt)
{
    static const char head[] = "WITH rt_c AS (";
    static const char tail[] = " RETURNING 1) SELECT 1 / (count(*) = 1)::int FROM rt_c";
    if (!stmt || !stmt->sql)
        return RT_EINVAL;
    size_t n = strlen(stmt->sql);
    char *sql = malloc(sizeof head + n + sizeof tail);
    if (!sql)
        return RT_ENOMEM;
    memcpy(sql, head, sizeof head - 1);
    memcpy(sql + sizeof head - 1, stmt->sql, n);
    memcpy(sql + sizeof head - 1 + n, tail, sizeof tail);
    free(stmt->sql);
    stmt->sql = sql;
    return RT_OK;
}

void rt_stmt_clear(rt_stmt_t *stmt)
{
    if (!stmt)
        return;
    free(stmt->sql);
    free(stmt->params);
    memset(stmt, 0, sizeof *stmt);
}
