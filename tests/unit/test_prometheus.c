/* tests/unit/test_prometheus.c - exact Prometheus text of web/prometheus, escaping, values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prometheus.h"

static void test_family_and_samples(void **state)
{
    (void)state;
    rt_buf_t b = {0};
    rt_prometheus_counter(&b, "rt_x_total", "Things counted.", NULL, 42);
    rt_prometheus_label_t labels[] = {{"subscriber", "r1"}, {"zone", "eu"}, {NULL, NULL}};
    rt_prometheus_gauge(&b, "rt_y", "A gauge.", labels, 7);
    rt_prometheus_label_t none[] = {{NULL, NULL}};
    rt_prometheus_family(&b, "rt_z", "untyped", NULL);
    rt_prometheus_sample(&b, "rt_z", none, 1);
    assert_string_equal(rt_buf_str(&b), "# HELP rt_x_total Things counted.\n"
                                        "# TYPE rt_x_total counter\n"
                                        "rt_x_total 42\n"
                                        "# HELP rt_y A gauge.\n"
                                        "# TYPE rt_y gauge\n"
                                        "rt_y{subscriber=\"r1\",zone=\"eu\"} 7\n"
                                        "# HELP rt_z \n"
                                        "# TYPE rt_z untyped\n"
                                        "rt_z 1\n");
    rt_buf_free(&b);
}

static void test_escaping(void **state)
{
    (void)state;
    rt_buf_t b = {0};
    /* HELP escapes backslash and newline but not quotes; label values all three. */
    rt_prometheus_family(&b, "m", "gauge", "a \"q\" \\ back\nslash");
    rt_prometheus_label_t labels[] = {{"l", "x\"y\\z\nw {}=,"}, {NULL, NULL}};
    rt_prometheus_sample(&b, "m", labels, 0);
    rt_prometheus_label_t empty[] = {{"l", ""}, {NULL, NULL}};
    rt_prometheus_sample(&b, "m", empty, 0);
    assert_string_equal(rt_buf_str(&b), "# HELP m a \"q\" \\\\ back\\nslash\n"
                                        "# TYPE m gauge\n"
                                        "m{l=\"x\\\"y\\\\z\\nw {}=,\"} 0\n"
                                        "m{l=\"\"} 0\n");
    rt_buf_free(&b);
}

static void test_values(void **state)
{
    (void)state;
    const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-3, "-3"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {123456789012345.0, "123456789012345"},
        {9007199254740991.0, "9007199254740991"},
        {18446744073709551615.0, "1.8446744073709552e+19"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {2.5e-7, "2.5e-07"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_buf_t b = {0};
        rt_prometheus_sample(&b, "v", NULL, cases[i].v);
        char want[64];
        snprintf(want, sizeof want, "v %s\n", cases[i].text);
        if (strcmp(rt_buf_str(&b), want) != 0)
            fail_msg("value %zu: got \"%s\", want \"%s\"", i, rt_buf_str(&b), want);
        if (isfinite(cases[i].v))
            assert_true(strtod(b.data + 2, NULL) == cases[i].v);
        rt_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
