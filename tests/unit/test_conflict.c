/* tests/unit/test_conflict.c - the conflict policies' words and rules, as a table of
 * cases: for each policy and conflict, what is done with the change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "subscriber/conflict.h"

typedef struct {
    int policy;
    rt_conflict_kind_t kind;
    bool complete; /* the remote row has every value */
    rt_resolve_t want;
} s_case_t;

static const s_case_t s_cases[] = {
    /* error: every conflict stops applying. */
    {RT_CONFLICT_ERROR, RT_CONFLICT_INSERT_EXISTS, true, RT_RESOLVE_STOP},
    {RT_CONFLICT_ERROR, RT_CONFLICT_UPDATE_MISSING, true, RT_RESOLVE_STOP},
    {RT_CONFLICT_ERROR, RT_CONFLICT_UPDATE_MISSING, false, RT_RESOLVE_STOP},
    {RT_CONFLICT_ERROR, RT_CONFLICT_DELETE_MISSING, false, RT_RESOLVE_STOP},
    /* apply_remote: the source's row wins, unless it cannot be written whole. */
    {RT_CONFLICT_APPLY_REMOTE, RT_CONFLICT_INSERT_EXISTS, true, RT_RESOLVE_APPLY},
    {RT_CONFLICT_APPLY_REMOTE, RT_CONFLICT_UPDATE_MISSING, true, RT_RESOLVE_APPLY},
    {RT_CONFLICT_APPLY_REMOTE, RT_CONFLICT_UPDATE_MISSING, false, RT_RESOLVE_STOP},
    {RT_CONFLICT_APPLY_REMOTE, RT_CONFLICT_DELETE_MISSING, false, RT_RESOLVE_SKIP},
    /* skip: the change is left out, whatever it is. */
    {RT_CONFLICT_SKIP, RT_CONFLICT_INSERT_EXISTS, true, RT_RESOLVE_SKIP},
    {RT_CONFLICT_SKIP, RT_CONFLICT_UPDATE_MISSING, true, RT_RESOLVE_SKIP},
    {RT_CONFLICT_SKIP, RT_CONFLICT_UPDATE_MISSING, false, RT_RESOLVE_SKIP},
    {RT_CONFLICT_SKIP, RT_CONFLICT_DELETE_MISSING, false, RT_RESOLVE_SKIP},
    /* A value that is not a policy is treated as error. */
    {-1, RT_CONFLICT_INSERT_EXISTS, true, RT_RESOLVE_STOP},
    {RT_CONFLICT_NPOLICIES, RT_CONFLICT_DELETE_MISSING, false, RT_RESOLVE_STOP},
};

static void test_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        rt_resolve_t got = rt_conflict_decide(c->policy, c->kind, c->complete);
        if (got != c->want)
            fail_msg("case %zu: policy %d kind %d complete %d: got %d, want %d", i, c->policy,
                     (int)c->kind, c->complete, (int)got, (int)c->want);
    }
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
    assert_int_equal(rt_conflict_policy_parse("Skip", &p), RT_EINVAL);
    assert_int_equal(rt_conflict_policy_parse("skip ", &p), RT_EINVAL);
    assert_string_equal(rt_conflict_policy_name(-1), "error");
    assert_string_equal(rt_conflict_policy_name(RT_CONFLICT_NPOLICIES), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
