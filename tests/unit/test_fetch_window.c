/* tests/unit/test_fetch_window.c - the FETCH credit (subscriber/fetch_window.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fetch_window.h"

/* Three consecutive ranges at most, only up to the head, sized by the largest record. */
static void test_credit(void **state)
{
    (void)state;
    rt_fetch_window_t w = {0};
    uint64_t from;
    uint32_t count;
    assert_true(rt_fetch_window_next(&w, 10, 2000, 0, &from, &count));
    assert_int_equal(from, 10);
    assert_int_equal(count, RT_FETCH_COUNT);
    assert_true(rt_fetch_window_next(&w, 10, 2000, 0, &from, &count));
    assert_int_equal(from, 10 + RT_FETCH_COUNT);
    assert_true(rt_fetch_window_next(&w, 10, 2000, 0, &from, &count));
    assert_false(rt_fetch_window_next(&w, 10, 2000, 0, &from, &count)); /* credit spent */
    assert_true(rt_fetch_window_busy(&w));

    /* Answered in full: the next range goes out; records of 1 MiB make it smaller. */
    rt_fetch_window_record(&w, 1u << 20, 5);
    assert_true(rt_fetch_window_answered(&w, 10, 10 + RT_FETCH_COUNT - 1, 2000, false, 6));
    assert_false(rt_fetch_window_answered(&w, 10, 10, 2000, false, 6)); /* not the oldest */
    assert_true(rt_fetch_window_next(&w, 10 + RT_FETCH_COUNT, 5000, 7, &from, &count));
    assert_int_equal(from, 10 + 3 * RT_FETCH_COUNT);
    assert_int_equal(count, RT_FETCH_BYTES / (1u << 20));

    /* A short answer before the head forgets the later ranges. */
    assert_true(
        rt_fetch_window_answered(&w, 10 + RT_FETCH_COUNT, 10 + RT_FETCH_COUNT + 5, 5000, false, 8));
    assert_false(rt_fetch_window_busy(&w));

    /* Nothing past the head is asked. */
    assert_false(rt_fetch_window_next(&w, 101, 100, 9, &from, &count));
}

/* An empty answer waits; an unanswered FETCH is forgotten after the retry time. */
static void test_empty_and_overdue(void **state)
{
    (void)state;
    rt_fetch_window_t w = {0};
    uint64_t from;
    uint32_t count;
    assert_true(rt_fetch_window_next(&w, 1, 10, 1000, &from, &count));
    assert_true(rt_fetch_window_answered(&w, 1, 0, 10, false, 1100));
    assert_false(rt_fetch_window_next(&w, 1, 10, 1100 + RT_FETCH_EMPTY_MS - 1, &from, &count));
    assert_true(rt_fetch_window_next(&w, 1, 10, 1100 + RT_FETCH_EMPTY_MS, &from, &count));
    assert_false(rt_fetch_window_overdue(&w, 1100 + RT_FETCH_EMPTY_MS + RT_FETCH_RETRY_MS - 1));
    rt_fetch_window_record(&w, 100, 1100 + RT_FETCH_EMPTY_MS + 10); /* being answered */
    assert_false(rt_fetch_window_overdue(&w, 1100 + RT_FETCH_EMPTY_MS + RT_FETCH_RETRY_MS));
    assert_true(rt_fetch_window_overdue(&w, 1100 + RT_FETCH_EMPTY_MS + 10 + RT_FETCH_RETRY_MS));
    assert_false(rt_fetch_window_busy(&w));
    /* Reset clears the wait of an empty answer too. */
    assert_true(rt_fetch_window_next(&w, 1, 10, 10000, &from, &count));
    assert_true(rt_fetch_window_answered(&w, 1, 0, 10, false, 10050));
    assert_false(rt_fetch_window_next(&w, 1, 10, 10051, &from, &count));
    rt_fetch_window_reset(&w);
    assert_true(rt_fetch_window_next(&w, 1, 10, 10051, &from, &count));
}

/* FETCHes unanswered in a row are counted until an answer, a record of one, or a forget. */
static void test_unanswered(void **state)
{
    (void)state;
    rt_fetch_window_t w = {0};
    uint64_t from;
    uint32_t count;
    int64_t t = 1000;
    for (int i = 1; i <= 2; i++) {
        assert_true(rt_fetch_window_next(&w, 1, 10, t, &from, &count));
        t += RT_FETCH_RETRY_MS;
        assert_true(rt_fetch_window_overdue(&w, t));
        assert_int_equal(w.unanswered, i);
    }
    assert_true(rt_fetch_window_next(&w, 1, 10, t, &from, &count));
    rt_fetch_window_record(&w, 100, t + 1);
    assert_int_equal(w.unanswered, 0);
    t += RT_FETCH_RETRY_MS + 1;
    assert_true(rt_fetch_window_overdue(&w, t));
    assert_int_equal(w.unanswered, 1);
    assert_true(rt_fetch_window_next(&w, 1, 10, t, &from, &count));
    assert_true(rt_fetch_window_answered(&w, 1, 10, 10, false, t + 1));
    assert_int_equal(w.unanswered, 0);
    assert_true(rt_fetch_window_next(&w, 11, 20, t + 2, &from, &count));
    assert_true(rt_fetch_window_overdue(&w, t + 2 + RT_FETCH_RETRY_MS));
    assert_int_equal(w.unanswered, 1);
    rt_fetch_window_forget(&w);
    assert_int_equal(w.unanswered, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credit),
        cmocka_unit_test(test_empty_and_overdue),
        cmocka_unit_test(test_unanswered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
