/* tests/unit/test_sqlgen.c - exact SQL text, parameter maps and shape keys of sqlgen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqlgen.h"

#define NCOLS(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

/* Parameter map notation: "n0 o2" = $1 from new column 0, $2 from old column 2. */
static void s_expect_params(const rt_stmt_t *st, const char *spec)
{
    char buf[256];
    size_t n = 0;
    for (uint32_t i = 0; i < st->nparams; i++) {
        int w = snprintf(buf + n, sizeof buf - n, "%s%c%u", i ? " " : "",
                         st->params[i].from_old ? 'o' : 'n', (unsigned)st->params[i].col);
        assert_true(w > 0 && (size_t)w < sizeof buf - n);
        n += (size_t)w;
    }
    buf[n] = '\0';
    assert_string_equal(buf, spec);
}

static void s_expect(const rt_relation_t *rel, char op, char kind, const rt_value_t *newvals,
                     const char *sql, const char *params)
{
    rt_stmt_t st;
    assert_int_equal(rt_sqlgen_change(rel, op, kind, newvals, &st), RT_OK);
    assert_non_null(st.sql);
    assert_string_equal(st.sql, sql);
    s_expect_params(&st, params);
    rt_stmt_clear(&st);
    assert_null(st.sql);
    assert_null(st.params);
    assert_int_equal(st.nparams, 0);
}

static const rt_value_t T = {RT_VAL_TEXT, 1, "x"};
static const rt_value_t U = {RT_VAL_UNCHANGED, 0, NULL};
static const rt_value_t N = {RT_VAL_NULL, 0, NULL};

/* public.t (a int4 key, b text, c int8) */
static rt_column_t s_cols[] = {
    {"a", 23, -1, true},
    {"b", 25, -1, false},
    {"c", 20, -1, false},
};
static const rt_relation_t s_rel = {"public", "t", 'd', 3, s_cols};

/* public.k2 (x int4 key, y text key, z text) */
static rt_column_t s_cols2[] = {
    {"x", 23, -1, true},
    {"y", 25, -1, true},
    {"z", 25, -1, false},
};
static const rt_relation_t s_rel2 = {"public", "k2", 'd', 3, s_cols2};

/* public.f (id int4, doc json, note text), no key: REPLICA IDENTITY FULL */
static rt_column_t s_colsf[] = {
    {"id", 23, -1, false},
    {"doc", 114, -1, false},
    {"note", 25, -1, false},
};
static const rt_relation_t s_relf = {"public", "f", 'f', 3, s_colsf};

static void test_qualified(void **state)
{
    (void)state;
    char *q = rt_sqlgen_qualified("Mixed Case", "we;ird name");
    assert_string_equal(q, "\"Mixed Case\".\"we;ird name\"");
    free(q);
    q = rt_sqlgen_qualified("", "pg_class");
    assert_string_equal(q, "\"pg_catalog\".\"pg_class\"");
    free(q);
    q = rt_sqlgen_qualified("a\"b", "\"");
    assert_string_equal(q, "\"a\"\"b\".\"\"\"\"");
    free(q);
    q = rt_sqlgen_qualified("\"\"x\"", "t");
    assert_string_equal(q, "\"\"\"\"\"x\"\"\".\"t\"");
    free(q);
    assert_null(rt_sqlgen_qualified(NULL, "t"));
    assert_null(rt_sqlgen_qualified("s", NULL));
}

static void test_insert(void **state)
{
    (void)state;
    rt_value_t nv[] = {T, N, T};
    s_expect(&s_rel, 'I', 0, nv,
             "INSERT INTO \"public\".\"t\" (\"a\", \"b\", \"c\") OVERRIDING SYSTEM VALUE VALUES "
             "($1, $2, $3)",
             "n0 n1 n2");
    /* newvals are optional for inserts */
    s_expect(&s_rel, 'I', 0, NULL,
             "INSERT INTO \"public\".\"t\" (\"a\", \"b\", \"c\") OVERRIDING SYSTEM VALUE VALUES "
             "($1, $2, $3)",
             "n0 n1 n2");
    /* inserts need no key */
    s_expect(&s_relf, 'I', 0, NULL,
             "INSERT INTO \"public\".\"f\" (\"id\", \"doc\", \"note\") OVERRIDING SYSTEM VALUE "
             "VALUES ($1, $2, $3)",
             "n0 n1 n2");
}

static void test_update_key_change(void **state)
{
    (void)state;
    rt_value_t nv[] = {T, T, N};
    s_expect(&s_rel, 'U', 'K', nv,
             "UPDATE \"public\".\"t\" SET \"a\" = $1, \"b\" = $2, \"c\" = $3 WHERE \"a\" = $4",
             "n0 n1 n2 o0");
    s_expect(&s_rel2, 'U', 'K', nv,
             "UPDATE \"public\".\"k2\" SET \"x\" = $1, \"y\" = $2, \"z\" = $3"
             " WHERE \"x\" = $4 AND \"y\" = $5",
             "n0 n1 n2 o0 o1");
}

static void test_update_no_old(void **state)
{
    (void)state;
    rt_value_t nv[] = {T, T, T};
    /* No old image: the key did not change, so its columns are not set (a replica key
     * GENERATED ALWAYS AS IDENTITY refuses a SET of it). */
    s_expect(&s_rel, 'U', 0, nv,
             "UPDATE \"public\".\"t\" SET \"b\" = $1, \"c\" = $2 WHERE \"a\" = $3", "n1 n2 n0");
    s_expect(&s_rel2, 'U', 0, nv,
             "UPDATE \"public\".\"k2\" SET \"z\" = $1 WHERE \"x\" = $2 AND \"y\" = $3", "n2 n0 n1");
}

static void test_update_unchanged(void **state)
{
    (void)state;
    rt_value_t nv[] = {T, U, T};
    s_expect(&s_rel, 'U', 0, nv, "UPDATE \"public\".\"t\" SET \"c\" = $1 WHERE \"a\" = $2",
             "n2 n0");
    rt_value_t nv2[] = {T, T, U};
    s_expect(&s_rel, 'U', 'K', nv2,
             "UPDATE \"public\".\"t\" SET \"a\" = $1, \"b\" = $2 WHERE \"a\" = $3", "n0 n1 o0");
}

static void test_update_nothing_to_set(void **state)
{
    (void)state;
    /* Nothing to set: an unchanged TOAST column is set to itself, a no-op that still
     * reports whether the row was found. */
    rt_value_t all[] = {U, U, U};
    s_expect(&s_rel, 'U', 0, all, "UPDATE \"public\".\"t\" SET \"b\" = \"b\" WHERE \"a\" = $1",
             "n0");
    s_expect(&s_rel, 'U', 'K', all, "UPDATE \"public\".\"t\" SET \"b\" = \"b\" WHERE \"a\" = $1",
             "o0");
    rt_column_t cols[] = {{"v", 25, -1, false}, {"id", 23, -1, true}};
    rt_relation_t rel = {"s", "r", 'd', 2, cols};
    rt_value_t two[] = {U, U};
    s_expect(&rel, 'U', 0, two, "UPDATE \"s\".\"r\" SET \"v\" = \"v\" WHERE \"id\" = $1", "n1");
    /* Only key columns: the first one is re-assigned from the image the WHERE reads (it
     * need not be the first column). */
    rt_column_t kcols[] = {{"x", 23, -1, false}, {"id", 23, -1, true}};
    rt_relation_t krel = {"s", "r", 'd', 2, kcols};
    rt_value_t xid[] = {T, T};
    s_expect(&krel, 'U', 0, xid, "UPDATE \"s\".\"r\" SET \"x\" = $1 WHERE \"id\" = $2", "n0 n1");
    rt_column_t only[] = {{"id", 23, -1, true}};
    rt_relation_t orel = {"s", "k", 'd', 1, only};
    rt_value_t one[] = {T};
    s_expect(&orel, 'U', 0, one, "UPDATE \"s\".\"k\" SET \"id\" = $1 WHERE \"id\" = $2", "n0 n0");
    s_expect(&s_relf, 'U', 'O', all,
             "UPDATE \"public\".\"f\" SET \"id\" = $1"
             " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM \"public\".\"f\""
             " WHERE \"id\" IS NOT DISTINCT FROM $2"
             " AND \"doc\"::text IS NOT DISTINCT FROM $3::text"
             " AND \"note\" IS NOT DISTINCT FROM $4 LIMIT 1)",
             "o0 o0 o1 o2");
    /* All non-key columns unchanged and the key the same: a no-op on the row. */
    rt_value_t keyonly[] = {T, U, U};
    s_expect(&s_rel, 'U', 0, keyonly, "UPDATE \"public\".\"t\" SET \"b\" = \"b\" WHERE \"a\" = $1",
             "n0");
}

static void test_full(void **state)
{
    (void)state;
    rt_value_t nv[] = {T, T, U};
    s_expect(&s_relf, 'U', 'O', nv,
             "UPDATE \"public\".\"f\" SET \"id\" = $1, \"doc\" = $2"
             " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM \"public\".\"f\""
             " WHERE \"id\" IS NOT DISTINCT FROM $3"
             " AND \"doc\"::text IS NOT DISTINCT FROM $4::text"
             " AND \"note\" IS NOT DISTINCT FROM $5 LIMIT 1)",
             "n0 n1 o0 o1 o2");
    s_expect(&s_relf, 'D', 'O', NULL,
             "DELETE FROM \"public\".\"f\""
             " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM \"public\".\"f\""
             " WHERE \"id\" IS NOT DISTINCT FROM $1"
             " AND \"doc\"::text IS NOT DISTINCT FROM $2::text"
             " AND \"note\" IS NOT DISTINCT FROM $3 LIMIT 1)",
             "o0 o1 o2");
    /* FULL on a table with a key compares every column, not only the key. */
    s_expect(&s_rel, 'D', 'O', NULL,
             "DELETE FROM \"public\".\"t\""
             " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM \"public\".\"t\""
             " WHERE \"a\" IS NOT DISTINCT FROM $1 AND \"b\" IS NOT DISTINCT FROM $2"
             " AND \"c\" IS NOT DISTINCT FROM $3 LIMIT 1)",
             "o0 o1 o2");
}

static void test_text_compared_types(void **state)
{
    (void)state;
    static const uint32_t as_text[] = {114, 142,  600,  601,  602,  603,  604, 628, 718,   199,
                                       143, 1017, 1018, 1019, 1020, 1027, 629, 719, 16384, 40000};
    static const uint32_t as_is[] = {16, 20, 23, 25, 1043, 1700, 3802, 1184, 2950, 1007};
    char want[256];
    for (size_t i = 0; i < sizeof as_text / sizeof as_text[0]; i++) {
        rt_column_t c = {"c", as_text[i], -1, false};
        rt_relation_t rel = {"s", "t", 'f', 1, &c};
        snprintf(want, sizeof want,
                 "DELETE FROM \"s\".\"t\" WHERE (tableoid, ctid) = (SELECT tableoid, ctid"
                 " FROM \"s\".\"t\" WHERE \"c\"::text IS NOT DISTINCT FROM $1::text LIMIT 1)");
        s_expect(&rel, 'D', 'O', NULL, want, "o0");
    }
    for (size_t i = 0; i < sizeof as_is / sizeof as_is[0]; i++) {
        rt_column_t c = {"c", as_is[i], -1, false};
        rt_relation_t rel = {"s", "t", 'f', 1, &c};
        snprintf(want, sizeof want,
                 "DELETE FROM \"s\".\"t\" WHERE (tableoid, ctid) = (SELECT tableoid, ctid"
                 " FROM \"s\".\"t\" WHERE \"c\" IS NOT DISTINCT FROM $1 LIMIT 1)");
        s_expect(&rel, 'D', 'O', NULL, want, "o0");
    }
}

static void test_delete_key(void **state)
{
    (void)state;
    s_expect(&s_rel, 'D', 'K', NULL, "DELETE FROM \"public\".\"t\" WHERE \"a\" = $1", "o0");
    s_expect(&s_rel2, 'D', 'K', NULL,
             "DELETE FROM \"public\".\"k2\" WHERE \"x\" = $1 AND \"y\" = $2", "o0 o1");
}

/* The row-count check wraps the statement and keeps its parameters. */
static void test_checked(void **state)
{
    (void)state;
    rt_stmt_t st = {0};
    assert_int_equal(rt_sqlgen_change(&s_rel, 'D', 'K', NULL, &st), RT_OK);
    uint32_t nparams = st.nparams;
    assert_int_equal(rt_sqlgen_checked(&st), RT_OK);
    assert_string_equal(st.sql, "WITH rt_c AS (DELETE FROM \"public\".\"t\" WHERE \"a\" = $1"
                                " RETURNING 1) SELECT 1 / (count(*) = 1)::int FROM rt_c");
    assert_int_equal(st.nparams, nparams);
    rt_stmt_clear(&st);
    assert_int_equal(rt_sqlgen_checked(&st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_checked(NULL), RT_EINVAL);
}

static void test_quoting(void **state)
{
    (void)state;
    rt_column_t cols[] = {{"Col \"q\"", 23, -1, true}, {"v;drop", 25, -1, false}};
    rt_relation_t rel = {"Mixed Case", "we;ird name", 'd', 2, cols};
    s_expect(&rel, 'I', 0, NULL,
             "INSERT INTO \"Mixed Case\".\"we;ird name\" (\"Col \"\"q\"\"\", \"v;drop\")"
             " OVERRIDING SYSTEM VALUE VALUES ($1, $2)",
             "n0 n1");
    rt_value_t nv[] = {T, T};
    s_expect(&rel, 'U', 'K', nv,
             "UPDATE \"Mixed Case\".\"we;ird name\" SET \"Col \"\"q\"\"\" = $1,"
             " \"v;drop\" = $2 WHERE \"Col \"\"q\"\"\" = $3",
             "n0 n1 o0");
    s_expect(&rel, 'D', 'K', NULL,
             "DELETE FROM \"Mixed Case\".\"we;ird name\" WHERE \"Col \"\"q\"\"\" = $1", "o0");
    rt_relation_t cat = {"", "pg_x", 'd', 2, cols};
    s_expect(&cat, 'D', 'K', NULL,
             "DELETE FROM \"pg_catalog\".\"pg_x\" WHERE \"Col \"\"q\"\"\" = $1", "o0");
}

static void test_no_key(void **state)
{
    (void)state;
    rt_value_t nv[] = {T, T, T};
    rt_stmt_t st = {(char *)"junk", 9, NULL};
    assert_int_equal(rt_sqlgen_change(&s_relf, 'U', 'K', nv, &st), RT_EINVAL);
    assert_null(st.sql);
    assert_int_equal(st.nparams, 0);
    assert_int_equal(rt_sqlgen_change(&s_relf, 'U', 0, nv, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_change(&s_relf, 'D', 'K', NULL, &st), RT_EINVAL);
    assert_null(st.sql);
    /* FULL works without a key */
    assert_int_equal(rt_sqlgen_change(&s_relf, 'U', 'O', nv, &st), RT_OK);
    rt_stmt_clear(&st);
    assert_int_equal(rt_sqlgen_change(&s_relf, 'D', 'O', NULL, &st), RT_OK);
    rt_stmt_clear(&st);
}

static void test_invalid(void **state)
{
    (void)state;
    rt_stmt_t st;
    rt_value_t nv[] = {T, T, T};
    assert_int_equal(rt_sqlgen_change(NULL, 'I', 0, nv, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_change(&s_rel, 'I', 0, nv, NULL), RT_EINVAL);
    assert_int_equal(rt_sqlgen_change(&s_rel, 'T', 0, nv, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_change(&s_rel, 'X', 'K', nv, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_change(&s_rel, 'U', 'Z', nv, &st), RT_EINVAL);
    /* a delete always carries an old image */
    assert_int_equal(rt_sqlgen_change(&s_rel, 'D', 0, NULL, &st), RT_EINVAL);
    rt_relation_t noname = {NULL, "t", 'd', 3, s_cols};
    assert_int_equal(rt_sqlgen_change(&noname, 'I', 0, nv, &st), RT_EINVAL);
    rt_relation_t nocols = {"s", "t", 'd', 3, NULL};
    assert_int_equal(rt_sqlgen_change(&nocols, 'I', 0, nv, &st), RT_EINVAL);
    rt_column_t badcol[] = {{NULL, 23, -1, true}};
    rt_relation_t bad = {"s", "t", 'd', 1, badcol};
    assert_int_equal(rt_sqlgen_change(&bad, 'I', 0, nv, &st), RT_EINVAL);
    rt_stmt_clear(NULL);
}

static void test_zero_columns(void **state)
{
    (void)state;
    rt_relation_t rel = {"s", "e", 'f', 0, NULL};
    s_expect(&rel, 'I', 0, NULL, "INSERT INTO \"s\".\"e\" DEFAULT VALUES", "");
    s_expect(&rel, 'D', 'O', NULL,
             "DELETE FROM \"s\".\"e\" WHERE (tableoid, ctid) = (SELECT tableoid, ctid"
             " FROM \"s\".\"e\" LIMIT 1)",
             "");
    rt_stmt_t st;
    assert_int_equal(rt_sqlgen_change(&rel, 'U', 'O', NULL, &st), RT_EINVAL);
}

static void s_expect_truncate(const rt_relation_t *const *rels, uint32_t n, uint8_t flags,
                              const char *want)
{
    char *sql = NULL;
    assert_int_equal(rt_sqlgen_truncate(rels, n, flags, &sql), RT_OK);
    assert_string_equal(sql, want);
    free(sql);
}

static void test_truncate(void **state)
{
    (void)state;
    rt_relation_t a = {"a", "b", 'd', 0, NULL};
    rt_relation_t c = {"Mixed Case", "d\"", 'd', 0, NULL};
    const rt_relation_t *one[] = {&a};
    const rt_relation_t *two[] = {&a, &c};
#define S_TRUNC_HEAD                                                                               \
    "DO $rt$DECLARE s text; BEGIN SELECT pg_catalog.string_agg(CASE c.relkind WHEN 'p' THEN '' "   \
    "ELSE 'ONLY ' END || u.name, ', ' ORDER BY u.ord) INTO s FROM pg_catalog.unnest(ARRAY["
#define S_TRUNC_MID                                                                                \
    "]::text[]) WITH ORDINALITY AS u(name, ord) JOIN pg_catalog.pg_class c ON c.oid = "            \
    "u.name::pg_catalog.regclass; EXECUTE 'TRUNCATE TABLE ' || s"
    s_expect_truncate(one, 1, 0, S_TRUNC_HEAD "'\"a\".\"b\"'" S_TRUNC_MID "; END$rt$");
    s_expect_truncate(two, 2, 0,
                      S_TRUNC_HEAD "'\"a\".\"b\"', '\"Mixed Case\".\"d\"\"\"'" S_TRUNC_MID
                                   "; END$rt$");
    s_expect_truncate(two, 2, 1,
                      S_TRUNC_HEAD "'\"a\".\"b\"', '\"Mixed Case\".\"d\"\"\"'" S_TRUNC_MID
                                   " || ' CASCADE'; END$rt$");
    s_expect_truncate(two, 2, 2,
                      S_TRUNC_HEAD "'\"a\".\"b\"', '\"Mixed Case\".\"d\"\"\"'" S_TRUNC_MID
                                   " || ' RESTART IDENTITY'; END$rt$");
    s_expect_truncate(one, 1, 3,
                      S_TRUNC_HEAD "'\"a\".\"b\"'" S_TRUNC_MID
                                   " || ' RESTART IDENTITY CASCADE'; END$rt$");
    const rt_relation_t *three[] = {&a, &c, &a};
    s_expect_truncate(three, 3, 1,
                      S_TRUNC_HEAD
                      "'\"a\".\"b\"', '\"Mixed Case\".\"d\"\"\"', '\"a\".\"b\"'" S_TRUNC_MID
                      " || ' CASCADE'; END$rt$");
    /* A quote is doubled in the literal; a name holding the dollar tag gets another. */
    rt_relation_t q = {"it's", "$rt$", 'd', 0, NULL};
    const rt_relation_t *odd[] = {&q};
    s_expect_truncate(odd, 1, 0,
                      "DO $rt1$DECLARE s text; BEGIN SELECT pg_catalog.string_agg(CASE c.relkind "
                      "WHEN 'p' THEN '' ELSE 'ONLY ' END || u.name, ', ' ORDER BY u.ord) INTO s "
                      "FROM pg_catalog.unnest(ARRAY['\"it''s\".\"$rt$\"'" S_TRUNC_MID "; END$rt1$");

    char *sql = (char *)"junk";
    assert_int_equal(rt_sqlgen_truncate(one, 0, 0, &sql), RT_EINVAL);
    assert_null(sql);
    assert_int_equal(rt_sqlgen_truncate(NULL, 1, 0, &sql), RT_EINVAL);
    assert_int_equal(rt_sqlgen_truncate(one, 1, 0, NULL), RT_EINVAL);
    const rt_relation_t *hole[] = {&a, NULL};
    assert_int_equal(rt_sqlgen_truncate(hole, 2, 0, &sql), RT_EINVAL);
    assert_null(sql);
}

/* Shape key of rel for op/kind/newvals, into a static-size buffer of the test. */
static void s_key(const rt_relation_t *rel, char op, char kind, const rt_value_t *nv, char out[64])
{
    int n = rt_sqlgen_shape_key(rel, op, kind, nv, out, 64);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_true(n < 64);
}

static void test_shape_key(void **state)
{
    (void)state;
    char k1[64], k2[64];
    rt_value_t a[] = {T, T, U};
    rt_value_t b[] = {N, T, U}; /* same unchanged set, different values */
    rt_value_t c[] = {T, U, T};
    rt_value_t d[] = {T, T, T};

    /* equal shapes, equal keys, from equal but distinct descriptors */
    rt_column_t cols_copy[] = {{"a", 23, 0, true}, {"b", 25, 7, false}, {"c", 20, -1, false}};
    rt_relation_t rel_copy = {"public", "t", 'f', 3, cols_copy};
    s_key(&s_rel, 'U', 'K', a, k1);
    s_key(&rel_copy, 'U', 'K', b, k2);
    assert_string_equal(k1, k2);
    assert_true(strlen(k1) <= 63);
    assert_int_equal(k1[0], 'U');
    assert_int_equal(k1[1], 'K');

    /* op */
    s_key(&s_rel, 'I', 0, d, k1);
    s_key(&s_rel, 'U', 0, d, k2);
    assert_string_not_equal(k1, k2);
    s_key(&s_rel, 'D', 'K', NULL, k1);
    s_key(&s_rel, 'U', 'K', d, k2);
    assert_string_not_equal(k1, k2);

    /* old_kind */
    s_key(&s_rel, 'U', 0, d, k1);
    s_key(&s_rel, 'U', 'K', d, k2);
    assert_string_not_equal(k1, k2);
    s_key(&s_rel, 'U', 'O', d, k1);
    assert_string_not_equal(k1, k2);
    s_key(&s_rel, 'D', 'O', NULL, k1);
    s_key(&s_rel, 'D', 'K', NULL, k2);
    assert_string_not_equal(k1, k2);

    /* unchanged set */
    s_key(&s_rel, 'U', 'K', a, k1);
    s_key(&s_rel, 'U', 'K', c, k2);
    assert_string_not_equal(k1, k2);
    s_key(&s_rel, 'U', 'K', d, k2);
    assert_string_not_equal(k1, k2);
    /* NULL newvals means nothing unchanged */
    s_key(&s_rel, 'U', 'K', NULL, k1);
    assert_string_equal(k1, k2);
    /* the unchanged set does not matter for inserts and deletes */
    s_key(&s_rel, 'D', 'K', a, k1);
    s_key(&s_rel, 'D', 'K', d, k2);
    assert_string_equal(k1, k2);

    /* column names, types, key flags, table, schema */
    s_key(&s_rel, 'U', 'K', a, k1);
    cols_copy[1].name = "B";
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_not_equal(k1, k2);
    cols_copy[1].name = "b";
    cols_copy[2].typoid = 21;
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_not_equal(k1, k2);
    cols_copy[2].typoid = 20;
    cols_copy[1].key = true;
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_not_equal(k1, k2);
    cols_copy[1].key = false;
    rel_copy.table = "t2";
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_not_equal(k1, k2);
    /* "ab"."c" and "a"."bc" must not run together */
    rel_copy.schema = "publict";
    rel_copy.table = "";
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_not_equal(k1, k2);
    rel_copy.schema = "public";
    rel_copy.table = "t";
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_equal(k1, k2);
    /* fewer columns */
    rel_copy.ncols = 2;
    s_key(&rel_copy, 'U', 'K', a, k2);
    assert_string_not_equal(k1, k2);

    /* unchanged bits past the first byte count */
    rt_column_t many[10];
    rt_value_t mv[10];
    for (int i = 0; i < 10; i++) {
        many[i] = (rt_column_t){"c", 23, -1, i == 0};
        mv[i] = T;
    }
    rt_relation_t mrel = {"s", "m", 'd', 10, many};
    s_key(&mrel, 'U', 0, mv, k1);
    mv[9] = U;
    s_key(&mrel, 'U', 0, mv, k2);
    assert_string_not_equal(k1, k2);
    /* column 9 and column 1 share a bit position in different bytes */
    mv[9] = T;
    mv[1] = U;
    s_key(&mrel, 'U', 0, mv, k1);
    assert_string_not_equal(k1, k2);
}

static void test_shape_key_invalid(void **state)
{
    (void)state;
    char buf[64];
    int n = rt_sqlgen_shape_key(&s_rel, 'U', 'K', NULL, buf, sizeof buf);
    assert_true(n > 0);
    /* exactly fits */
    char small[64];
    assert_int_equal(rt_sqlgen_shape_key(&s_rel, 'U', 'K', NULL, small, (size_t)n + 1), n);
    assert_string_equal(small, buf);
    assert_int_equal(rt_sqlgen_shape_key(&s_rel, 'U', 'K', NULL, small, (size_t)n), RT_EINVAL);
    assert_int_equal(rt_sqlgen_shape_key(&s_rel, 'U', 'K', NULL, small, 0), RT_EINVAL);
    assert_int_equal(rt_sqlgen_shape_key(&s_rel, 'U', 'K', NULL, NULL, 64), RT_EINVAL);
    assert_int_equal(rt_sqlgen_shape_key(NULL, 'U', 'K', NULL, buf, sizeof buf), RT_EINVAL);
    assert_int_equal(rt_sqlgen_shape_key(&s_rel, 'T', 0, NULL, buf, sizeof buf), RT_EINVAL);
    assert_int_equal(rt_sqlgen_shape_key(&s_rel, 'U', 'x', NULL, buf, sizeof buf), RT_EINVAL);
}

#define S_VTAIL                                                                                    \
    ", LATERAL (SELECT ((extract(epoch FROM c.\"timestamp\") - 946684800) * 1000000)::bigint, "    \
    "c.roident, o.roname FROM pg_catalog.pg_xact_commit_timestamp_origin(r.rt_x) c "               \
    "LEFT JOIN pg_catalog.pg_replication_origin o ON o.roident = c.roident) v"

static void s_expect_version(const rt_relation_t *rel, char what, char kind, const char *tomb,
                             const char *sql, const char *params)
{
    rt_stmt_t st;
    assert_int_equal(rt_sqlgen_version(rel, what, kind, tomb, &st), RT_OK);
    assert_string_equal(st.sql, sql);
    s_expect_params(&st, params);
    rt_stmt_clear(&st);
}

static void test_version(void **state)
{
    (void)state;
    /* The row's version, locked: by the key of the new image, of the old one, or all. */
    s_expect_version(&s_rel, 'R', 0, NULL,
                     "SELECT v.* FROM (SELECT xmin AS rt_x FROM \"public\".\"t\" WHERE \"a\" = $1 "
                     "LIMIT 1 FOR UPDATE) r" S_VTAIL,
                     "n0");
    s_expect_version(&s_rel2, 'R', 'K', NULL,
                     "SELECT v.* FROM (SELECT xmin AS rt_x FROM \"public\".\"k2\" WHERE \"x\" = $1 "
                     "AND \"y\" = $2 LIMIT 1 FOR UPDATE) r" S_VTAIL,
                     "o0 o1");
    s_expect_version(
        &s_relf, 'R', 'O', NULL,
        "SELECT v.* FROM (SELECT xmin AS rt_x FROM \"public\".\"f\" WHERE \"id\" IS NOT "
        "DISTINCT FROM $1 AND \"doc\"::text IS NOT DISTINCT FROM $2::text AND \"note\" "
        "IS NOT DISTINCT FROM $3 LIMIT 1 FOR UPDATE) r" S_VTAIL,
        "o0 o1 o2");
    /* The tombstone's version, and its write. */
    s_expect_version(
        &s_rel2, 'S', 'K', "tomb_16384",
        "SELECT v.* FROM (SELECT rt_xid::xid AS rt_x FROM rt.\"tomb_16384\" WHERE \"x\" "
        "= $1 AND \"y\" = $2) r" S_VTAIL,
        "o0 o1");
    s_expect_version(&s_rel2, 'W', 'K', "tomb_16384",
                     "INSERT INTO rt.\"tomb_16384\" (\"x\", \"y\") VALUES ($1, $2) ON CONFLICT "
                     "(\"x\", \"y\") DO UPDATE SET rt_xid = pg_catalog.pg_current_xact_id()",
                     "o0 o1");
    s_expect_version(&s_rel, 'W', 0, "tomb_1",
                     "INSERT INTO rt.\"tomb_1\" (\"a\") VALUES ($1) ON "
                     "CONFLICT (\"a\") DO UPDATE SET rt_xid = pg_catalog.pg_current_xact_id()",
                     "n0");
    /* Tombstones need a key; a read needs an identity; what is one of R, S, W. */
    rt_stmt_t st;
    assert_int_equal(rt_sqlgen_version(&s_relf, 'S', 'O', "tomb_1", &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_version(&s_relf, 'R', 0, NULL, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_version(&s_rel, 'S', 'K', NULL, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_version(&s_rel, 'X', 'K', NULL, &st), RT_EINVAL);
    assert_int_equal(rt_sqlgen_version(&s_rel, 'R', 'x', NULL, &st), RT_EINVAL);
    assert_null(st.sql);
    /* Each has a shape key of its own. */
    char r[64], sk[64], w[64];
    assert_true(rt_sqlgen_shape_key(&s_rel, 'R', 'K', NULL, r, sizeof r) > 0);
    assert_true(rt_sqlgen_shape_key(&s_rel, 'S', 'K', NULL, sk, sizeof sk) > 0);
    assert_true(rt_sqlgen_shape_key(&s_rel, 'W', 'K', NULL, w, sizeof w) > 0);
    assert_string_not_equal(r, sk);
    assert_string_not_equal(sk, w);
}

static void test_copy_sql(void **state)
{
    (void)state;
    char *sql = NULL;
    assert_int_equal(rt_sqlgen_copy(&s_rel, &sql), RT_OK);
    assert_string_equal(sql, "COPY \"public\".\"t\" (\"a\", \"b\", \"c\") FROM STDIN");
    free(sql);
    rt_column_t q[] = {{"we\"ird", 25, -1, false}};
    rt_relation_t rq = {"", "x\"y", 'd', 1, q};
    assert_int_equal(rt_sqlgen_copy(&rq, &sql), RT_OK);
    assert_string_equal(sql, "COPY \"pg_catalog\".\"x\"\"y\" (\"we\"\"ird\") FROM STDIN");
    free(sql);
    rt_relation_t none = {"public", "e", 'd', 0, NULL};
    assert_int_equal(rt_sqlgen_copy(&none, &sql), RT_EINVAL);
    assert_null(sql);
    assert_int_equal(rt_sqlgen_copy(NULL, &sql), RT_EINVAL);
    assert_int_equal(rt_sqlgen_copy(&s_rel, NULL), RT_EINVAL);
}

static rt_value_t s_text(const char *s)
{
    return (rt_value_t){RT_VAL_TEXT, (uint32_t)strlen(s), s};
}

/* Encodes vals with a buffer of exactly the bound and checks the line. */
static void s_expect_row(const rt_value_t *vals, uint32_t n, const char *line)
{
    size_t bound = rt_sqlgen_copy_row_bound(vals, n);
    char *buf = malloc(bound);
    size_t len = 99;
    assert_non_null(buf);
    assert_int_equal(rt_sqlgen_copy_row(vals, n, buf, bound, &len), RT_OK);
    assert_int_equal(len, strlen(line));
    assert_memory_equal(buf, line, len);
    free(buf);
}

static void test_copy_row(void **state)
{
    (void)state;
    rt_value_t plain[] = {s_text("1"), s_text("abc"), N};
    s_expect_row(plain, 3, "1\tabc\t\\N\n");
    /* the four escaped bytes, and nothing else */
    rt_value_t esc[] = {s_text("a\tb"), s_text("l1\nl2\r"), s_text("back\\slash")};
    s_expect_row(esc, 3, "a\\tb\tl1\\nl2\\r\tback\\\\slash\n");
    /* a text that looks like the NULL marker is escaped; an empty string is empty */
    rt_value_t look[] = {s_text("\\N"), s_text(""), N, s_text("\\.")};
    s_expect_row(look, 4, "\\\\N\t\t\\N\t\\\\.\n");
    /* bytea hex, arrays with quotes, unicode pass through with backslashes doubled */
    rt_value_t mixed[] = {s_text("\\x00ff"), s_text("{\"a\\\"b\",NULL}"),
                          s_text("\xc3\xa9\xe2\x82\xac")};
    s_expect_row(mixed, 3, "\\\\x00ff\t{\"a\\\\\"b\",NULL}\t\xc3\xa9\xe2\x82\xac\n");
    /* only special bytes: every one doubles, which the bound allows */
    rt_value_t worst[] = {s_text("\\\t\n\r"), N};
    s_expect_row(worst, 2, "\\\\\\t\\n\\r\t\\N\n");
    /* no values: an empty line */
    s_expect_row(NULL, 0, "\n");
}

/* Escapes text the slow way, one byte at a time, for comparison. */
static size_t s_ref_escape(const char *in, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
            out[w++] = '\\';
            out[w++] = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
        } else {
            out[w++] = c;
        }
    }
    return w;
}

static void test_copy_row_long(void **state)
{
    (void)state;
    /* Every special byte at every position of values longer than one 8-byte step,
     * next to bytes that differ from it by one bit or by one (no false matches). */
    const char specials[] = {'\\', '\t', '\n', '\r'};
    const char near[] = {']', '[', '\x0b', '\x08', '\x0c', '\x0e', '|', 'L', '\xdc', '\x89'};
    char text[40], want[100], got[100];
    for (size_t k = 0; k < sizeof specials; k++) {
        for (size_t len = 1; len <= 33; len += 4) {
            for (size_t pos = 0; pos < len; pos++) {
                for (size_t i = 0; i < len; i++)
                    text[i] = near[(i + pos) % sizeof near];
                text[pos] = specials[k];
                if (pos + 9 < len)
                    text[pos + 9] = specials[(k + 1) % sizeof specials];
                text[len] = '\0';
                rt_value_t v[] = {{RT_VAL_TEXT, (uint32_t)len, text}};
                size_t w = s_ref_escape(text, len, want);
                want[w++] = '\n';
                size_t n = 0;
                assert_int_equal(rt_sqlgen_copy_row(v, 1, got, sizeof got, &n), RT_OK);
                assert_int_equal(n, w);
                assert_memory_equal(got, want, w);
            }
        }
    }
    /* no special byte at all, long */
    memset(text, 'z', 39);
    text[39] = '\0';
    rt_value_t v[] = {{RT_VAL_TEXT, 39, text}};
    size_t n = 0;
    assert_int_equal(rt_sqlgen_copy_row(v, 1, got, sizeof got, &n), RT_OK);
    assert_int_equal(n, 40);
    assert_memory_equal(got, text, 39);
}

static void test_copy_row_invalid(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 7;
    rt_value_t unchanged[] = {s_text("1"), U};
    assert_int_equal(rt_sqlgen_copy_row(unchanged, 2, buf, sizeof buf, &len), RT_EPROTO);
    assert_int_equal(len, 0);
    rt_value_t nodata[] = {{RT_VAL_TEXT, 3, NULL}};
    assert_int_equal(rt_sqlgen_copy_row(nodata, 1, buf, sizeof buf, &len), RT_EPROTO);
    /* below the bound by one byte, then exactly the bound */
    rt_value_t v[] = {s_text("ab"), s_text("c")};
    size_t bound = rt_sqlgen_copy_row_bound(v, 2);
    assert_int_equal(bound, 9);
    assert_int_equal(rt_sqlgen_copy_row(v, 2, buf, bound - 1, &len), RT_EINVAL);
    assert_int_equal(rt_sqlgen_copy_row(v, 2, buf, bound, &len), RT_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "ab\tc\n", 5);
    assert_int_equal(rt_sqlgen_copy_row(v, 2, buf, 0, &len), RT_EINVAL);
    assert_int_equal(rt_sqlgen_copy_row(v, 2, NULL, 64, &len), RT_EINVAL);
    assert_int_equal(rt_sqlgen_copy_row(NULL, 2, buf, 64, &len), RT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qualified),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_update_key_change),
        cmocka_unit_test(test_update_no_old),
        cmocka_unit_test(test_update_unchanged),
        cmocka_unit_test(test_update_nothing_to_set),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_text_compared_types),
        cmocka_unit_test(test_delete_key),
        cmocka_unit_test(test_checked),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_no_key),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_zero_columns),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_shape_key),
        cmocka_unit_test(test_shape_key_invalid),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_copy_sql),
        cmocka_unit_test(test_copy_row),
        cmocka_unit_test(test_copy_row_long),
        cmocka_unit_test(test_copy_row_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
