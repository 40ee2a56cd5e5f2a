/* publisher/metrics.c - the publisher's /metrics body (Prometheus text). */
#include "metrics.h"

/* A gauge whose value may be unknown (< 0): then its family is declared without a sample,
 * which Prometheus reads as absent (alert rules see it with absent()). */
static void s_gauge_known(rt_buf_t *out, const char *name, const char *help, int64_t v,
                          double scale)
{
    rt_prometheus_family(out, name, "gauge", help);
    if (v >= 0)
        rt_prometheus_sample(out, name, NULL, (double)v * scale);
}

void rt_metrics_publisher(rt_buf_t *out, const rt_metrics_publisher_t *m)
{
    rt_prometheus_counter(out, "rt_publisher_captured_transactions_total",
                          "Source transactions stored in the outbox since start.", NULL,
                          (double)m->captured_txns);
    rt_prometheus_counter(out, "rt_publisher_captured_rows_total",
                          "Row changes stored in the outbox since start.", NULL,
                          (double)m->captured_rows);
    rt_prometheus_counter(out, "rt_publisher_captured_sequences_total",
                          "Sequence values stored in the outbox since start.", NULL,
                          (double)m->captured_sequences);
    rt_prometheus_counter(out, "rt_publisher_captured_ddl_total",
                          "Schema changes (DDL commands) stored in the outbox since start.", NULL,
                          (double)m->captured_ddl);
    rt_prometheus_counter(out, "rt_publisher_filtered_transactions_total",
                          "Source transactions dropped because of their replication origin.", NULL,
                          (double)m->filtered_txns);
    rt_prometheus_counter(out, "rt_publisher_skipped_transactions_total",
                          "Source transactions dropped as already stored, after a restart.", NULL,
                          (double)m->skipped_txns);
    rt_prometheus_counter(
        out, "rt_publisher_streamed_transactions_total",
        "Source transactions received in blocks before their commit, since start.", NULL,
        (double)m->streamed_txns);
    rt_prometheus_gauge(out, "rt_publisher_streaming_transactions",
                        "Source transactions open and being received in blocks now.", NULL,
                        (double)m->streaming_txns);
    rt_prometheus_gauge(out, "rt_publisher_source_connected",
                        "1 while the replication stream from the source is up.", NULL,
                        m->source_connected ? 1 : 0);
    rt_prometheus_gauge(
        out, "rt_publisher_outbox_full",
        "1 while the outbox is at its size limit and reading from the source waits.", NULL,
        m->outbox_full ? 1 : 0);
    rt_prometheus_gauge(out, "rt_publisher_outbox_records", "Records in the outbox.", NULL,
                        (double)m->outbox_records);
    rt_prometheus_gauge(out, "rt_publisher_outbox_bytes", "Bytes used by the outbox.", NULL,
                        (double)m->outbox_bytes);
    rt_prometheus_gauge(out, "rt_publisher_outbox_limit_bytes",
                        "Size limit of the outbox (--max-outbox-mb); 0 when there is none.", NULL,
                        (double)m->outbox_limit_bytes);
    rt_prometheus_counter(out, "rt_publisher_outbox_commits_total",
                          "Outbox write transactions (fsync'd) of captured records and positions, "
                          "since start.",
                          NULL, (double)m->outbox_commits);
    rt_prometheus_counter(out, "rt_publisher_outbox_committed_records_total",
                          "Records stored by those commits since start (divided by the commits: "
                          "the group commit's size).",
                          NULL, (double)m->outbox_commit_records);
    rt_prometheus_gauge(out, "rt_publisher_first_seq", "Oldest record kept in the outbox.", NULL,
                        (double)m->first_seq);
    rt_prometheus_gauge(out, "rt_publisher_head_seq", "Newest durable record in the outbox.", NULL,
                        (double)m->head_seq);
    rt_prometheus_gauge(out, "rt_publisher_received_lsn",
                        "Newest WAL position received from the source, as a number.", NULL,
                        (double)m->received_lsn);
    rt_prometheus_gauge(out, "rt_publisher_confirmed_lsn",
                        "Flush LSN confirmed to the source, as a number.", NULL,
                        (double)m->confirmed_lsn);
    s_gauge_known(out, "rt_publisher_slot_retained_wal_bytes",
                  "WAL the source keeps for the slot: current WAL position - restart_lsn. No "
                  "sample while unknown.",
                  m->retained_wal_bytes, 1);
    s_gauge_known(out, "rt_publisher_source_lag_bytes",
                  "Source's current WAL position - the slot's confirmed_flush_lsn. No sample "
                  "while unknown.",
                  m->source_lag_bytes, 1);
    s_gauge_known(out, "rt_publisher_source_lag_seconds",
                  "flush_lag of the publisher's WAL sender on the source, 0 when caught up. No "
                  "sample while unknown.",
                  m->source_lag_ms, 1e-3);
    rt_prometheus_counter(out, "rt_publisher_bad_frames_total",
                          "Frames from peers dropped as malformed.", NULL, (double)m->bad_frames);
    rt_prometheus_counter(out, "rt_publisher_dropped_peers_total",
                          "Peers disconnected because they did not read what they asked for.", NULL,
                          (double)m->dropped_peers);

    static const struct {
        const char *name;
        const char *help;
    } fam[] = {
        {"rt_publisher_subscriber_acked_seq", "Last seq the subscriber acknowledged."},
        {"rt_publisher_subscriber_lag_records", "Records the subscriber has yet to apply."},
        {"rt_publisher_subscriber_up", "1 while the subscriber is heard from."},
        {"rt_publisher_subscriber_error",
         "1 while the subscriber reports state error (stopped at, or retrying, a change it "
         "cannot apply, or its replica is down)."},
        {"rt_publisher_subscriber_lag_seconds",
         "Age of the oldest record the subscriber lacks, or of its last commit's apply when "
         "at the head; 0 when unknown."},
        {"rt_publisher_subscriber_copy_tables_done",
         "Tables its initial copy has copied (0 when none runs)."},
        {"rt_publisher_subscriber_copy_tables_total", "Tables its initial copy copies."},
        {"rt_publisher_subscriber_copy_rows", "Rows its initial copy loaded so far."},
        {"rt_publisher_subscriber_copy_bytes", "COPY bytes its initial copy loaded so far."},
        {"rt_publisher_subscriber_copy_bytes_estimate",
         "Estimate of the COPY bytes its initial copy loads in all."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        rt_prometheus_family(out, fam[f].name, "gauge", fam[f].help);
        for (size_t i = 0; i < m->nsubs; i++) {
            const rt_metrics_pub_sub_t *s = &m->subs[i];
            rt_prometheus_label_t labels[] = {{"subscriber", s->name}, {NULL, NULL}};
            const double v[] = {(double)s->acked_seq,
                                (double)s->lag_records,
                                s->up ? 1 : 0,
                                s->error ? 1 : 0,
                                s->lag_seconds,
                                (double)s->copy.tables_done,
                                (double)s->copy.tables_total,
                                (double)s->copy.rows,
                                (double)s->copy.bytes,
                                (double)s->copy.bytes_total};
            rt_prometheus_sample(out, fam[f].name, labels, v[f]);
        }
    }
}
