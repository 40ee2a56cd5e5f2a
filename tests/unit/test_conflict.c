/* tests/unit/test_conflict.c - the conflict policies' words and rules, as a table of
 * cases: for each policy and conflict, what is done with the change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "subscriber/conflict.h"

/* Versions: U unknown; times in microseconds; nodes a < b. */
static const rt_version_t U = {false, 0, ""};
static const rt_version_t A10 = {true, 10, "a"};
static const rt_version_t A20 = {true, 20, "a"};
static const rt_version_t B10 = {true, 10, "b"};
static const rt_version_t B20 = {true, 20, "b"};

typedef struct {
    int policy;
    rt_conflict_kind_t kind;
    const rt_version_t *local, *remote;
    bool complete; /* the remote row has every value */
    rt_resolve_t want;
} s_case_t;

#define IE RT_CONFLICT_INSERT_EXISTS
#define UM RT_CONFLICT_UPDATE_MISSING
#define DM RT_CONFLICT_DELETE_MISSING
#define UD RT_CONFLICT_UPDATE_DIFFERS
#define DD RT_CONFLICT_DELETE_DIFFERS
#define ID RT_CONFLICT_INSERT_DELETED
#define UX RT_CONFLICT_UPDATE_DELETED
#define APPLY RT_RESOLVE_APPLY
#define SKIP RT_RESOLVE_SKIP
#define STOP RT_RESOLVE_STOP

static const s_case_t s_cases[] = {
    /* error: every conflict stops applying. */
    {RT_CONFLICT_ERROR, IE, &U, &A10, true, STOP},
    {RT_CONFLICT_ERROR, UM, &U, &A10, true, STOP},
    {RT_CONFLICT_ERROR, UM, &U, &A10, false, STOP},
    {RT_CONFLICT_ERROR, DM, &U, &A10, false, STOP},
    {RT_CONFLICT_ERROR, UD, &B20, &A10, true, STOP},
    /* apply_remote: the source's row wins, unless it cannot be written whole. */
    {RT_CONFLICT_APPLY_REMOTE, IE, &U, &A10, true, APPLY},
    {RT_CONFLICT_APPLY_REMOTE, IE, &B20, &A10, true, APPLY},
    {RT_CONFLICT_APPLY_REMOTE, UM, &U, &A10, true, APPLY},
    {RT_CONFLICT_APPLY_REMOTE, UM, &U, &A10, false, STOP},
    {RT_CONFLICT_APPLY_REMOTE, DM, &U, &A10, false, SKIP},
    /* skip: an existing key's insert, a missing row's update or delete is left out. */
    {RT_CONFLICT_SKIP, IE, &U, &A10, true, SKIP},
    {RT_CONFLICT_SKIP, UM, &U, &A10, true, SKIP},
    {RT_CONFLICT_SKIP, UM, &U, &A10, false, SKIP},
    {RT_CONFLICT_SKIP, DM, &U, &A10, false, SKIP},
    /* keep_local: the replica's version wins, whatever the times. */
    {RT_CONFLICT_KEEP_LOCAL, IE, &A10, &B20, true, SKIP},
    {RT_CONFLICT_KEEP_LOCAL, IE, &U, &B20, true, SKIP},
    {RT_CONFLICT_KEEP_LOCAL, UD, &A10, &B20, true, SKIP},
    {RT_CONFLICT_KEEP_LOCAL, DD, &A10, &B20, true, SKIP},
    {RT_CONFLICT_KEEP_LOCAL, UM, &U, &B20, true, SKIP},
    {RT_CONFLICT_KEEP_LOCAL, DM, &U, &B20, true, SKIP},
    /* last_write_wins: the later commit wins... */
    {RT_CONFLICT_LWW, IE, &A10, &B20, true, APPLY},
    {RT_CONFLICT_LWW, IE, &A20, &B10, true, SKIP},
    {RT_CONFLICT_LWW, UD, &A10, &B20, true, APPLY},
    {RT_CONFLICT_LWW, UD, &A20, &B10, true, SKIP},
    {RT_CONFLICT_LWW, DD, &A10, &B20, true, APPLY},
    {RT_CONFLICT_LWW, DD, &A20, &B10, true, SKIP},
    /* ... ties go to the node whose name sorts last, the same on every node ... */
    {RT_CONFLICT_LWW, IE, &A10, &B10, true, APPLY},
    {RT_CONFLICT_LWW, IE, &B10, &A10, true, SKIP},
    {RT_CONFLICT_LWW, UD, &A20, &B20, true, APPLY},
    {RT_CONFLICT_LWW, UD, &B20, &A20, true, SKIP},
    /* ... a version of unknown time (older than the times kept) loses to any ... */
    {RT_CONFLICT_LWW, IE, &U, &A10, true, APPLY},
    {RT_CONFLICT_LWW, UD, &U, &A10, true, APPLY},
    /* ... a tombstone is the delete's version: a later delete beats an update or insert,
     * an earlier one loses to it (the row comes back, if it can be written whole) ... */
    {RT_CONFLICT_LWW, UX, &B20, &A10, true, SKIP},
    {RT_CONFLICT_LWW, UX, &B10, &A20, true, APPLY},
    {RT_CONFLICT_LWW, UX, &B10, &A20, false, STOP},
    {RT_CONFLICT_LWW, ID, &B20, &A10, true, SKIP},
    {RT_CONFLICT_LWW, ID, &B10, &A20, true, APPLY},
    /* ... no tombstone: the update of a missing row inserts it ... */
    {RT_CONFLICT_LWW, UM, &U, &A10, true, APPLY},
    {RT_CONFLICT_LWW, UM, &U, &A10, false, STOP},
    /* ... and a delete of a missing row has nothing to do. */
    {RT_CONFLICT_LWW, DM, &U, &A10, true, SKIP},
    {RT_CONFLICT_LWW, DM, &B10, &A20, true, SKIP},
    /* A value that is not a policy is treated as error. */
    {-1, IE, &U, &A10, true, STOP},
    {RT_CONFLICT_NPOLICIES, DM, &U, &A10, false, STOP},
};

static void test_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        rt_resolve_t got = rt_conflict_decide(c->policy, c->kind, c->local, c->remote, c->complete);
        if (got != c->want)
            fail_msg("case %zu: policy %d kind %s complete %d: got %d, want %d", i, c->policy,
                     rt_conflict_kind_name(c->kind), c->complete, (int)got, (int)c->want);
    }
}

/* The winner does not depend on which side is local: two nodes that meet the same two
 * versions in opposite roles pick the same one. */
static void test_symmetric(void **state)
{
    (void)state;
    const rt_version_t *v[] = {&A10, &A20, &B10, &B20};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++) {
            if (i == j)
                continue;
            bool ij = rt_conflict_remote_wins(v[i], v[j]);
            bool ji = rt_conflict_remote_wins(v[j], v[i]);
            if (ij == ji)
                fail_msg("versions %zu and %zu: both or neither win", i, j);
        }
    assert_string_equal(rt_conflict_kind_name(RT_CONFLICT_UPDATE_DIFFERS), "update_origin_differs");
    assert_string_equal(rt_conflict_kind_name(RT_CONFLICT_NKINDS), "conflict");
}

static void test_words(void **state)
{
    (void)state;
    int p = -1;
    for (int i = 0; i < RT_CONFLICT_NPOLICIES; i++) {
        assert_int_equal(rt_conflict_policy_parse(rt_conflict_policy_words[i], &p), 0);
        assert_int_equal(p, i);
        assert_string_equal(rt_conflict_policy_name(i), rt_conflict_policy_words[i]);
    }
    assert_null(rt_conflict_policy_words[RT_CONFLICT_NPOLICIES]);
    assert_int_equal(rt_conflict_policy_parse("skip", &p), 0);
    assert_int_equal(p, RT_CONFLICT_SKIP);
    assert_int_equal(rt_conflict_policy_parse("last_write_wins", &p), 0);
    assert_int_equal(p, RT_CONFLICT_LWW);
    assert_int_equal(rt_conflict_policy_parse("keep_local", &p), 0);
    assert_int_equal(p, RT_CONFLICT_KEEP_LOCAL);
    assert_int_equal(rt_conflict_policy_parse("Skip", &p), RT_EINVAL);
    assert_int_equal(rt_conflict_policy_parse("skip ", &p), RT_EINVAL);
    assert_string_equal(rt_conflict_policy_name(-1), "error");
    assert_string_equal(rt_conflict_policy_name(RT_CONFLICT_NPOLICIES), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_symmetric),
        cmocka_unit_test(test_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
