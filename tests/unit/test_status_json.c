/* tests/unit/test_status_json.c - exact JSON of common/status_json (a publisher's status). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "status_json.h"

static void test_publisher(void **state)
{
    (void)state;
    int64_t now = 800000000000000; /* PG epoch µs */
    rt_status_sub_t subs[3] = {
        {.name = "replica1",
         .acked_seq = 90,
         .state = RT_SUB_STREAMING,
         .seen_ms_ago = 12,
         .conflicts = 2,
         .commit_ts = now - 5000000,
         .applied_at = now - 4000000,
         .lag_bytes = 1000,
         .lag_ms = 250},
        {.name = "we\"ird\\one",
         .acked_seq = 120,
         .state = RT_SUB_PAUSED,
         .seen_ms_ago = -1,
         .lag_ms = -1,
         .error = "duplicate key\n\"x\""},
        {.name = "gone", .acked_seq = 0, .state = 99, .seen_ms_ago = 600000, .lag_ms = -1},
    };
    rt_status_t st = {
        .source = "src",
        .slot = "rt_src",
        .first_seq = 1,
        .head_seq = 100,
        .records = 100,
        .outbox_bytes = 4096,
        .received_lsn = 0x16B374D848ULL,
        .confirmed_lsn = 0x0ULL,
        .captured_txns = 7,
        .captured_rows = 70,
        .nsubs = 3,
        .subs = subs,
        .capture_state = RT_CAPTURE_BLOCKED,
        .security = RT_SECURITY_INSECURE,
        .oldest_ts = now - 60000000,
        .head_ts = now - 1500,
        .now_ts = now,
        .retained_wal_bytes = 123456789,
        .source_lag_bytes = 4096,
        .source_lag_ms = 350,
        .outbox_limit_bytes = 8388608,
    };
    rt_buf_t b = {0};
    rt_status_json(&b, &st);
    assert_int_equal(rt_buf_error(&b), 0);
    /* Unix ms of now - 5 s and now - 4 s: 946684800000 + 800000000000 - 5000 / - 4000. */
    assert_string_equal(
        rt_buf_str(&b),
        "{\"source\":\"src\",\"slot\":\"rt_src\",\"upstream\":\"\",\"upstream_head_seq\":0,"
        "\"capture_state\":\"blocked (outbox full)\","
        "\"security\":\"insecure\",\"first_seq\":1,\"head_seq\":100,\"records\":100,\"outbox_"
        "bytes\":4096,"
        "\"oldest_record_age_ms\":60000,\"head_age_ms\":1,"
        "\"received_lsn\":\"16/B374D848\",\"confirmed_lsn\":\"0/0\","
        "\"captured_txns\":7,\"captured_rows\":70,\"retained_wal_bytes\":123456789,"
        "\"source_lag_bytes\":4096,\"source_lag_ms\":350,\"outbox_limit_bytes\":8388608,"
        "\"subscribers\":["
        "{\"name\":\"replica1\",\"state\":\"streaming\",\"acked_seq\":90,\"applied_seq\":90,"
        "\"lag_records\":10,\"lag_bytes\":1000,\"lag_ms\":250,\"conflicts\":2,"
        "\"last_commit_ts_ms\":1746684795000,\"last_applied_at_ms\":1746684796000,"
        "\"seen_ms_ago\":12,\"error\":\"\"},"
        "{\"name\":\"we\\\"ird\\\\one\",\"state\":\"paused\",\"acked_seq\":120,"
        "\"applied_seq\":120,\"lag_records\":0,\"lag_bytes\":0,\"lag_ms\":-1,\"conflicts\":0,"
        "\"last_commit_ts_ms\":0,\"last_applied_at_ms\":0,\"seen_ms_ago\":-1,"
        "\"error\":\"duplicate key\\u000a\\\"x\\\"\"},"
        "{\"name\":\"gone\",\"state\":\"unknown\",\"acked_seq\":0,\"applied_seq\":0,"
        "\"lag_records\":100,\"lag_bytes\":0,\"lag_ms\":-1,\"conflicts\":0,"
        "\"last_commit_ts_ms\":0,\"last_applied_at_ms\":0,\"seen_ms_ago\":600000,"
        "\"error\":\"\"}]}");
    rt_buf_free(&b);

    /* A relay names what it follows. */
    snprintf(st.upstream, sizeof st.upstream, "tcp://10.0.0.1:7470");
    st.upstream_head = 104;
    rt_status_json(&b, &st);
    assert_non_null(strstr(rt_buf_str(&b), ",\"upstream\":\"tcp://10.0.0.1:7470\","
                                           "\"upstream_head_seq\":104,"));
    rt_buf_free(&b);
    st.upstream[0] = '\0';
    st.upstream_head = 0;

    /* An empty outbox has no ages; no subscribers is an empty list. */
    st.records = 0;
    st.nsubs = 0;
    st.subs = NULL;
    st.capture_state = RT_CAPTURE_STREAMING;
    rt_status_json(&b, &st);
    assert_non_null(strstr(rt_buf_str(&b), "\"capture_state\":\"streaming\","));
    assert_non_null(strstr(rt_buf_str(&b), "\"oldest_record_age_ms\":-1,\"head_age_ms\":-1,"));
    assert_non_null(strstr(rt_buf_str(&b), "\"subscribers\":[]}"));
    rt_buf_free(&b);

    /* Unknown figures (not measured yet, the source down, an older publisher) are -1. */
    st.retained_wal_bytes = st.source_lag_bytes = st.source_lag_ms = -1;
    st.outbox_limit_bytes = -1;
    rt_status_json(&b, &st);
    assert_non_null(strstr(rt_buf_str(&b),
                           ",\"retained_wal_bytes\":-1,\"source_lag_bytes\":-1,"
                           "\"source_lag_ms\":-1,\"outbox_limit_bytes\":-1,\"subscribers\":[]}"));
    rt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publisher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
