/* tests/unit/test_buf.c - common/buf: growth, formatting, JSON strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "buf.h"

static void test_buf_grows_and_formats(void **state)
{
    (void)state;
    rt_buf_t b = {0};
    assert_string_equal(rt_buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        rt_buf_printf(&b, "%04d,", i);
    assert_int_equal(b.len, 5000);
    assert_int_equal(strlen(b.data), 5000);
    assert_memory_equal(b.data + 4995, "0999,", 5);
    char big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rt_buf_reset(&b);
    rt_buf_printf(&b, "<%s>", big); /* longer than the printf fast path */
    assert_int_equal(b.len, 701);
    assert_int_equal(b.data[700], '>');
    assert_int_equal(rt_buf_error(&b), 0);
    rt_buf_free(&b);
    assert_null(b.data);
}

static void test_buf_json_string(void **state)
{
    (void)state;
    rt_buf_t b = {0};
    rt_buf_json_string(&b, "a\"b\\c\n\x01\x7f"
                           "d\xc3\xa9");
    assert_string_equal(rt_buf_str(&b), "\"a\\\"b\\\\c\\u000a\\u0001\\u007fd\xc3\xa9\"");
    rt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_and_formats),
        cmocka_unit_test(test_buf_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
