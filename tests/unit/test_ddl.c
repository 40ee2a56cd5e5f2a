/* tests/unit/test_ddl.c - the subscriber's reading of DDL commands: which ones lose their
 * CONCURRENTLY to run in the replica transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apply_int.h"

static void s_expect(const char *command, const char *want)
{
    char *got = rt__ddl_without_concurrently(command);
    if (!want) {
        if (got)
            fail_msg("\"%s\" became \"%s\"", command, got);
        return;
    }
    if (!got)
        fail_msg("\"%s\" kept its CONCURRENTLY", command);
    assert_string_equal(got, want);
    free(got);
}

static void test_without_concurrently(void **state)
{
    (void)state;
    s_expect("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX  i ON t (a)");
    s_expect("create unique index concurrently if not exists i on t(a)",
             "create unique index  if not exists i on t(a)");
    s_expect("/* a /* nested */ comment */ -- and a line\n  DROP INDEX\tCONCURRENTLY IF EXISTS s.i",
             "/* a /* nested */ comment */ -- and a line\n  DROP INDEX\t IF EXISTS s.i");
    s_expect("CREATE INDEX CONCURRENTLY;", "CREATE INDEX ;");
    /* Not the keyword in its place: left alone. */
    s_expect("CREATE INDEX i ON t (concurrently)", NULL);
    s_expect("CREATE INDEX concurrently_i ON t (a)", NULL);
    s_expect("CREATE INDEX \"CONCURRENTLY\" ON t (a)", NULL);
    s_expect("CREATE TABLE concurrently (a int)", NULL);
    s_expect("REINDEX INDEX CONCURRENTLY i", NULL);
    s_expect("SELECT 1; CREATE INDEX CONCURRENTLY i ON t (a)", NULL);
    s_expect("/* unterminated comment CREATE INDEX CONCURRENTLY", NULL);
    s_expect("", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_concurrently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
