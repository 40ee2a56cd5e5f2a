/* tests/unit/test_metrics.c - exact /metrics bodies of the daemons and the subscriber's
 * /api/status JSON (publisher/metrics, subscriber/metrics). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "publisher/metrics.h"
#include "subscriber/metrics.h"
#include "wire.h"

static void test_publisher_body(void **state)
{
    (void)state;
    rt_metrics_pub_sub_t subs[] = {
        {.name = "replica1", .acked_seq = 90, .lag_records = 10, .up = true, .lag_seconds = 0.25},
        {.name = "odd\"name",
         .acked_seq = 0,
         .lag_records = 100,
         .up = false,
         .error = true,
         .lag_seconds = 61.5,
         .copy = {2, 5, 1000, 65536, 131072, 7000}},
    };
    rt_metrics_publisher_t m = {
        .captured_txns = 5,
        .captured_rows = 50,
        .captured_sequences = 6,
        .captured_ddl = 2,
        .filtered_txns = 1,
        .skipped_txns = 2,
        .streamed_txns = 4,
        .streaming_txns = 1,
        .source_connected = true,
        .outbox_full = false,
        .outbox_records = 100,
        .outbox_bytes = 65536,
        .outbox_limit_bytes = 8388608,
        .outbox_commits = 7,
        .outbox_commit_records = 91,
        .first_seq = 1,
        .head_seq = 100,
        .received_lsn = 0x16B374D848ULL,
        .confirmed_lsn = 0x16B374D800ULL,
        .retained_wal_bytes = 134217728,
        .source_lag_bytes = 8192,
        .source_lag_ms = 1250,
        .bad_frames = 3,
        .dropped_peers = 2,
        .nsubs = 2,
        .subs = subs,
    };
    rt_buf_t b = {0};
    rt_metrics_publisher(&b, &m);
    assert_int_equal(rt_buf_error(&b), 0);
    const char *want =
        "# HELP rt_publisher_captured_transactions_total Source transactions stored in the outbox "
        "since start.\n"
        "# TYPE rt_publisher_captured_transactions_total counter\n"
        "rt_publisher_captured_transactions_total 5\n"
        "# HELP rt_publisher_captured_rows_total Row changes stored in the outbox since start.\n"
        "# TYPE rt_publisher_captured_rows_total counter\n"
        "rt_publisher_captured_rows_total 50\n"
        "# HELP rt_publisher_captured_sequences_total Sequence values stored in the outbox since "
        "start.\n"
        "# TYPE rt_publisher_captured_sequences_total counter\n"
        "rt_publisher_captured_sequences_total 6\n"
        "# HELP rt_publisher_captured_ddl_total Schema changes (DDL commands) stored in the "
        "outbox since start.\n"
        "# TYPE rt_publisher_captured_ddl_total counter\n"
        "rt_publisher_captured_ddl_total 2\n"
        "# HELP rt_publisher_filtered_transactions_total Source transactions dropped because of "
        "their replication origin.\n"
        "# TYPE rt_publisher_filtered_transactions_total counter\n"
        "rt_publisher_filtered_transactions_total 1\n"
        "# HELP rt_publisher_skipped_transactions_total Source transactions dropped as already "
        "stored, after a restart.\n"
        "# TYPE rt_publisher_skipped_transactions_total counter\n"
        "rt_publisher_skipped_transactions_total 2\n"
        "# HELP rt_publisher_streamed_transactions_total Source transactions received in blocks "
        "before their commit, since start.\n"
        "# TYPE rt_publisher_streamed_transactions_total counter\n"
        "rt_publisher_streamed_transactions_total 4\n"
        "# HELP rt_publisher_streaming_transactions Source transactions open and being received "
        "in blocks now.\n"
        "# TYPE rt_publisher_streaming_transactions gauge\n"
        "rt_publisher_streaming_transactions 1\n"
        "# HELP rt_publisher_source_connected 1 while the replication stream from the source is "
        "up.\n"
        "# TYPE rt_publisher_source_connected gauge\n"
        "rt_publisher_source_connected 1\n"
        "# HELP rt_publisher_outbox_full 1 while the outbox is at its size limit and reading from "
        "the source waits.\n"
        "# TYPE rt_publisher_outbox_full gauge\n"
        "rt_publisher_outbox_full 0\n"
        "# HELP rt_publisher_outbox_records Records in the outbox.\n"
        "# TYPE rt_publisher_outbox_records gauge\n"
        "rt_publisher_outbox_records 100\n"
        "# HELP rt_publisher_outbox_bytes Bytes used by the outbox.\n"
        "# TYPE rt_publisher_outbox_bytes gauge\n"
        "rt_publisher_outbox_bytes 65536\n"
        "# HELP rt_publisher_outbox_limit_bytes Size limit of the outbox (--max-outbox-mb); 0 "
        "when there is none.\n"
        "# TYPE rt_publisher_outbox_limit_bytes gauge\n"
        "rt_publisher_outbox_limit_bytes 8388608\n"
        "# HELP rt_publisher_outbox_commits_total Outbox write transactions (fsync'd) of "
        "captured records and positions, since start.\n"
        "# TYPE rt_publisher_outbox_commits_total counter\n"
        "rt_publisher_outbox_commits_total 7\n"
        "# HELP rt_publisher_outbox_committed_records_total Records stored by those commits since "
        "start (divided by the commits: the group commit's size).\n"
        "# TYPE rt_publisher_outbox_committed_records_total counter\n"
        "rt_publisher_outbox_committed_records_total 91\n"
        "# HELP rt_publisher_first_seq Oldest record kept in the outbox.\n"
        "# TYPE rt_publisher_first_seq gauge\n"
        "rt_publisher_first_seq 1\n"
        "# HELP rt_publisher_head_seq Newest durable record in the outbox.\n"
        "# TYPE rt_publisher_head_seq gauge\n"
        "rt_publisher_head_seq 100\n"
        "# HELP rt_publisher_received_lsn Newest WAL position received from the source, as a "
        "number.\n"
        "# TYPE rt_publisher_received_lsn gauge\n"
        "rt_publisher_received_lsn 97500059720\n"
        "# HELP rt_publisher_confirmed_lsn Flush LSN confirmed to the source, as a number.\n"
        "# TYPE rt_publisher_confirmed_lsn gauge\n"
        "rt_publisher_confirmed_lsn 97500059648\n"
        "# HELP rt_publisher_slot_retained_wal_bytes WAL the source keeps for the slot: current "
        "WAL position - restart_lsn. No sample while unknown.\n"
        "# TYPE rt_publisher_slot_retained_wal_bytes gauge\n"
        "rt_publisher_slot_retained_wal_bytes 134217728\n"
        "# HELP rt_publisher_source_lag_bytes Source's current WAL position - the slot's "
        "confirmed_flush_lsn. No sample while unknown.\n"
        "# TYPE rt_publisher_source_lag_bytes gauge\n"
        "rt_publisher_source_lag_bytes 8192\n"
        "# HELP rt_publisher_source_lag_seconds flush_lag of the publisher's WAL sender on the "
        "source, 0 when caught up. No sample while unknown.\n"
        "# TYPE rt_publisher_source_lag_seconds gauge\n"
        "rt_publisher_source_lag_seconds 1.25\n"
        "# HELP rt_publisher_bad_frames_total Frames from peers dropped as malformed.\n"
        "# TYPE rt_publisher_bad_frames_total counter\n"
        "rt_publisher_bad_frames_total 3\n"
        "# HELP rt_publisher_dropped_peers_total Peers disconnected because they did not read what "
        "they asked for.\n"
        "# TYPE rt_publisher_dropped_peers_total counter\n"
        "rt_publisher_dropped_peers_total 2\n"
        "# HELP rt_publisher_subscriber_acked_seq Last seq the subscriber acknowledged.\n"
        "# TYPE rt_publisher_subscriber_acked_seq gauge\n"
        "rt_publisher_subscriber_acked_seq{subscriber=\"replica1\"} 90\n"
        "rt_publisher_subscriber_acked_seq{subscriber=\"odd\\\"name\"} 0\n"
        "# HELP rt_publisher_subscriber_lag_records Records the subscriber has yet to apply.\n"
        "# TYPE rt_publisher_subscriber_lag_records gauge\n"
        "rt_publisher_subscriber_lag_records{subscriber=\"replica1\"} 10\n"
        "rt_publisher_subscriber_lag_records{subscriber=\"odd\\\"name\"} 100\n"
        "# HELP rt_publisher_subscriber_up 1 while the subscriber is heard from.\n"
        "# TYPE rt_publisher_subscriber_up gauge\n"
        "rt_publisher_subscriber_up{subscriber=\"replica1\"} 1\n"
        "rt_publisher_subscriber_up{subscriber=\"odd\\\"name\"} 0\n"
        "# HELP rt_publisher_subscriber_error 1 while the subscriber reports state error "
        "(stopped at, or retrying, a change it cannot apply, or its replica is down).\n"
        "# TYPE rt_publisher_subscriber_error gauge\n"
        "rt_publisher_subscriber_error{subscriber=\"replica1\"} 0\n"
        "rt_publisher_subscriber_error{subscriber=\"odd\\\"name\"} 1\n"
        "# HELP rt_publisher_subscriber_lag_seconds Age of the oldest record the subscriber "
        "lacks, or of its last commit's apply when at the head; 0 when unknown.\n"
        "# TYPE rt_publisher_subscriber_lag_seconds gauge\n"
        "rt_publisher_subscriber_lag_seconds{subscriber=\"replica1\"} 0.25\n"
        "rt_publisher_subscriber_lag_seconds{subscriber=\"odd\\\"name\"} 61.5\n"
        "# HELP rt_publisher_subscriber_copy_tables_done Tables its initial copy has copied (0 "
        "when none runs).\n"
        "# TYPE rt_publisher_subscriber_copy_tables_done gauge\n"
        "rt_publisher_subscriber_copy_tables_done{subscriber=\"replica1\"} 0\n"
        "rt_publisher_subscriber_copy_tables_done{subscriber=\"odd\\\"name\"} 2\n"
        "# HELP rt_publisher_subscriber_copy_tables_total Tables its initial copy copies.\n"
        "# TYPE rt_publisher_subscriber_copy_tables_total gauge\n"
        "rt_publisher_subscriber_copy_tables_total{subscriber=\"replica1\"} 0\n"
        "rt_publisher_subscriber_copy_tables_total{subscriber=\"odd\\\"name\"} 5\n"
        "# HELP rt_publisher_subscriber_copy_rows Rows its initial copy loaded so far.\n"
        "# TYPE rt_publisher_subscriber_copy_rows gauge\n"
        "rt_publisher_subscriber_copy_rows{subscriber=\"replica1\"} 0\n"
        "rt_publisher_subscriber_copy_rows{subscriber=\"odd\\\"name\"} 1000\n"
        "# HELP rt_publisher_subscriber_copy_bytes COPY bytes its initial copy loaded so far.\n"
        "# TYPE rt_publisher_subscriber_copy_bytes gauge\n"
        "rt_publisher_subscriber_copy_bytes{subscriber=\"replica1\"} 0\n"
        "rt_publisher_subscriber_copy_bytes{subscriber=\"odd\\\"name\"} 65536\n"
        "# HELP rt_publisher_subscriber_copy_bytes_estimate Estimate of the COPY bytes its "
        "initial copy loads in all.\n"
        "# TYPE rt_publisher_subscriber_copy_bytes_estimate gauge\n"
        "rt_publisher_subscriber_copy_bytes_estimate{subscriber=\"replica1\"} 0\n"
        "rt_publisher_subscriber_copy_bytes_estimate{subscriber=\"odd\\\"name\"} 131072\n";
    assert_string_equal(rt_buf_str(&b), want);
    rt_buf_free(&b);

    /* No subscribers: the families are still declared, with no samples. */
    m.nsubs = 0;
    m.subs = NULL;
    rt_metrics_publisher(&b, &m);
    assert_non_null(strstr(rt_buf_str(&b), "# TYPE rt_publisher_subscriber_up gauge\n"));
    assert_null(strstr(rt_buf_str(&b), "{subscriber="));
    rt_buf_free(&b);

    /* Unknown slot figures: declared, without a sample; a zero lag is a sample. */
    m.retained_wal_bytes = -1;
    m.source_lag_bytes = -1;
    m.source_lag_ms = 0;
    m.outbox_limit_bytes = 0;
    rt_metrics_publisher(&b, &m);
    const char *body = rt_buf_str(&b);
    assert_non_null(strstr(body, "# TYPE rt_publisher_slot_retained_wal_bytes gauge\n# HELP "));
    assert_null(strstr(body, "\nrt_publisher_slot_retained_wal_bytes "));
    assert_null(strstr(body, "\nrt_publisher_source_lag_bytes "));
    assert_non_null(strstr(body, "\nrt_publisher_source_lag_seconds 0\n"));
    assert_non_null(strstr(body, "\nrt_publisher_outbox_limit_bytes 0\n"));
    rt_buf_free(&b);
}

/* An initial copy under way: 64 KiB of ~128 KiB loaded in 2 s. */
static const rt_copy_progress_t s_copy = {.tables_done = 2,
                                          .tables_total = 9,
                                          .rows = 5000,
                                          .bytes = 65536,
                                          .bytes_total = 131072,
                                          .elapsed_ms = 2000};

static void test_subscriber_body(void **state)
{
    (void)state;
    rt_metrics_subscriber_t m = {
        .name = "r1",
        .connected = true,
        .applied_seq = 12,
        .head_seq = 20,
        .applied_txns = 11,
        .streamed_txns = 3,
        .applied_rows = 110,
        .lag_records = 8,
        .lag_seconds = 1.25,
        .conflicts = 0,
        .reconnects = 2,
        .bad_frames = 1,
    };
    rt_buf_t b = {0};
    rt_metrics_subscriber(&b, &m);
    const char *want =
        "# HELP rt_subscriber_up 1 while the publisher answers.\n"
        "# TYPE rt_subscriber_up gauge\n"
        "rt_subscriber_up 1\n"
        "# HELP rt_subscriber_error 1 while in state error: stopped at, or retrying, a change it "
        "cannot apply, or its replica is down.\n"
        "# TYPE rt_subscriber_error gauge\n"
        "rt_subscriber_error 0\n"
        "# HELP rt_subscriber_applied_seq Last seq applied and committed on the replica.\n"
        "# TYPE rt_subscriber_applied_seq gauge\n"
        "rt_subscriber_applied_seq 12\n"
        "# HELP rt_subscriber_head_seq Newest seq the publisher announced.\n"
        "# TYPE rt_subscriber_head_seq gauge\n"
        "rt_subscriber_head_seq 20\n"
        "# HELP rt_subscriber_applied_transactions_total Source transactions applied to the "
        "replica since start.\n"
        "# TYPE rt_subscriber_applied_transactions_total counter\n"
        "rt_subscriber_applied_transactions_total 11\n"
        "# HELP rt_subscriber_streamed_transactions_total Of those, large ones applied while "
        "they ran on the source (from their blocks).\n"
        "# TYPE rt_subscriber_streamed_transactions_total counter\n"
        "rt_subscriber_streamed_transactions_total 3\n"
        "# HELP rt_subscriber_applied_rows_total Row changes applied to the replica since start.\n"
        "# TYPE rt_subscriber_applied_rows_total counter\n"
        "rt_subscriber_applied_rows_total 110\n"
        "# HELP rt_subscriber_sequences_moved_total Replica sequences moved forward past the "
        "source's since start.\n"
        "# TYPE rt_subscriber_sequences_moved_total counter\n"
        "rt_subscriber_sequences_moved_total 0\n"
        "# HELP rt_subscriber_ddl_applied_total Schema changes (DDL commands) applied to the "
        "replica since start.\n"
        "# TYPE rt_subscriber_ddl_applied_total counter\n"
        "rt_subscriber_ddl_applied_total 0\n"
        "# HELP rt_subscriber_lag_records Records announced but not yet applied.\n"
        "# TYPE rt_subscriber_lag_records gauge\n"
        "rt_subscriber_lag_records 8\n"
        "# HELP rt_subscriber_lag_seconds Age of the last applied source commit; 0 when caught "
        "up.\n"
        "# TYPE rt_subscriber_lag_seconds gauge\n"
        "rt_subscriber_lag_seconds 1.25\n"
        "# HELP rt_subscriber_conflicts_total Changes that did not match the replica's rows.\n"
        "# TYPE rt_subscriber_conflicts_total counter\n"
        "rt_subscriber_conflicts_total 0\n"
        "# HELP rt_subscriber_reconnects_total Reconnections to the publisher since start.\n"
        "# TYPE rt_subscriber_reconnects_total counter\n"
        "rt_subscriber_reconnects_total 2\n"
        "# HELP rt_subscriber_bad_frames_total Frames from the publisher dropped as malformed.\n"
        "# TYPE rt_subscriber_bad_frames_total counter\n"
        "rt_subscriber_bad_frames_total 1\n"
        "# HELP rt_subscriber_copy_tables_done Tables the initial copy has copied (0 when none "
        "runs).\n"
        "# TYPE rt_subscriber_copy_tables_done gauge\n"
        "rt_subscriber_copy_tables_done 0\n"
        "# HELP rt_subscriber_copy_tables_total Tables the initial copy copies.\n"
        "# TYPE rt_subscriber_copy_tables_total gauge\n"
        "rt_subscriber_copy_tables_total 0\n"
        "# HELP rt_subscriber_copy_rows Rows the initial copy loaded so far.\n"
        "# TYPE rt_subscriber_copy_rows gauge\n"
        "rt_subscriber_copy_rows 0\n"
        "# HELP rt_subscriber_copy_bytes COPY bytes the initial copy loaded so far.\n"
        "# TYPE rt_subscriber_copy_bytes gauge\n"
        "rt_subscriber_copy_bytes 0\n"
        "# HELP rt_subscriber_copy_bytes_total Estimate of the COPY bytes the initial copy "
        "loads in all.\n"
        "# TYPE rt_subscriber_copy_bytes_total gauge\n"
        "rt_subscriber_copy_bytes_total 0\n"
        "# HELP rt_subscriber_copy_elapsed_seconds Time the initial copy has been copying.\n"
        "# TYPE rt_subscriber_copy_elapsed_seconds gauge\n"
        "rt_subscriber_copy_elapsed_seconds 0\n";
    assert_string_equal(rt_buf_str(&b), want);
    rt_buf_free(&b);

    /* In state error. */
    m.error = true;
    rt_metrics_subscriber(&b, &m);
    assert_non_null(strstr(rt_buf_str(&b), "\nrt_subscriber_error 1\n"));
    rt_buf_free(&b);

    /* While a copy runs, its progress. */
    rt_copy_progress_t copy = s_copy;
    copy.elapsed_ms = 2500;
    m.copy = &copy;
    rt_metrics_subscriber(&b, &m);
    const char *body = rt_buf_str(&b);
    assert_non_null(strstr(body, "\nrt_subscriber_copy_tables_done 2\n"));
    assert_non_null(strstr(body, "\nrt_subscriber_copy_tables_total 9\n"));
    assert_non_null(strstr(body, "\nrt_subscriber_copy_rows 5000\n"));
    assert_non_null(strstr(body, "\nrt_subscriber_copy_bytes 65536\n"));
    assert_non_null(strstr(body, "\nrt_subscriber_copy_bytes_total 131072\n"));
    assert_non_null(strstr(body, "\nrt_subscriber_copy_elapsed_seconds 2.5\n"));
    rt_buf_free(&b);
}

static void test_subscriber_json(void **state)
{
    (void)state;
    rt_metrics_subscriber_t m = {
        .name = "r1",
        .publisher = "tcp://127.0.0.1:7470",
        .source = NULL,
        .state = RT_SUB_CATCHING_UP,
        .connected = false,
        .applied_seq = 3,
        .head_seq = 9,
        .lag_records = 6,
        .lag_seconds = 1.5,
        .applied_txns = 2,
        .applied_rows = 20,
        .conflicts = 1,
        .reconnects = 4,
        .bad_frames = 5,
    };
    rt_buf_t b = {0};
    rt_metrics_subscriber_json(&b, &m);
    assert_string_equal(rt_buf_str(&b),
                        "{\"role\":\"subscriber\",\"name\":\"r1\",\"publisher\":"
                        "\"tcp://127.0.0.1:7470\",\"source\":null,\"state\":\"catching-up\","
                        "\"connected\":false,\"applied_seq\":3,\"head_seq\":9,\"lag_records\":6,"
                        "\"lag_seconds\":1.500,\"applied_txns\":2,\"applied_rows\":20,"
                        "\"conflicts\":1,\"reconnects\":4,\"bad_frames\":5,\"copy\":null}");
    rt_buf_free(&b);

    /* JSON has no NaN: a bogus lag prints as 0. */
    m.source = "src";
    m.lag_seconds = NAN;
    m.connected = true;
    m.state = RT_SUB_STREAMING;
    rt_metrics_subscriber_json(&b, &m);
    assert_non_null(strstr(rt_buf_str(&b), "\"source\":\"src\",\"state\":\"streaming\","
                                           "\"connected\":true"));
    assert_non_null(strstr(rt_buf_str(&b), "\"lag_seconds\":0.000,"));
    rt_buf_free(&b);

    /* An initial copy: 64 KiB of ~128 KiB in 2 s, so ~2 s left. */
    rt_copy_progress_t copy = s_copy;
    m.state = RT_SUB_COPYING;
    m.copy = &copy;
    rt_metrics_subscriber_json(&b, &m);
    assert_non_null(strstr(rt_buf_str(&b), "\"state\":\"copying\","));
    assert_non_null(strstr(rt_buf_str(&b),
                           ",\"bad_frames\":5,\"copy\":{\"tables_done\":2,\"tables_total\":9,"
                           "\"rows\":5000,\"bytes\":65536,\"bytes_total\":131072,"
                           "\"elapsed_ms\":2000,\"rows_per_s\":2500.0,\"seconds_left\":2}}"));
    rt_buf_free(&b);

    /* No rate yet: the time left is unknown; every byte loaded: none left. */
    copy = (rt_copy_progress_t){.tables_total = 9};
    rt_metrics_subscriber_json(&b, &m);
    assert_non_null(strstr(rt_buf_str(&b), "\"rows_per_s\":0.0,\"seconds_left\":null}}"));
    rt_buf_free(&b);
    copy = (rt_copy_progress_t){
        .tables_done = 9, .tables_total = 9, .bytes = 200, .bytes_total = 100, .elapsed_ms = 10};
    rt_metrics_subscriber_json(&b, &m);
    assert_non_null(strstr(rt_buf_str(&b), "\"seconds_left\":0}}"));
    rt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publisher_body),
        cmocka_unit_test(test_subscriber_body),
        cmocka_unit_test(test_subscriber_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
