/* subscriber/metrics.c - the subscriber's /metrics body (Prometheus text) and /api/status JSON. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>

#include "wire.h"

void rt_metrics_subscriber(rt_buf_t *out, const rt_metrics_subscriber_t *m)
{
    rt_prometheus_gauge(out, "rt_subscriber_up", "1 while the publisher answers.", NULL,
                        m->connected ? 1 : 0);
    rt_prometheus_gauge(out, "rt_subscriber_error",
                        "1 while in state error: stopped at, or retrying, a change it cannot "
                        "apply, or its replica is down.",
                        NULL, m->error ? 1 : 0);
    rt_prometheus_gauge(out, "rt_subscriber_applied_seq",
                        "Last seq applied and committed on the replica.", NULL,
                        (double)m->applied_seq);
    rt_prometheus_gauge(out, "rt_subscriber_head_seq", "Newest seq the publisher announced.", NULL,
                        (double)m->head_seq);
    rt_prometheus_counter(out, "rt_subscriber_applied_transactions_total",
                          "Source transactions applied to the replica since start.", NULL,
                          (double)m->applied_txns);
    rt_prometheus_counter(out, "rt_subscriber_streamed_transactions_total",
                          "Of those, large ones applied while they ran on the source (from "
                          "their blocks).",
                          NULL, (double)m->streamed_txns);
    rt_prometheus_counter(out, "rt_subscriber_applied_rows_total",
                          "Row changes applied to the replica since start.", NULL,
                          (double)m->applied_rows);
    rt_prometheus_counter(out, "rt_subscriber_sequences_moved_total",
                          "Replica sequences moved forward past the source's since start.", NULL,
                          (double)m->sequences_moved);
    rt_prometheus_counter(out, "rt_subscriber_ddl_applied_total",
                          "Schema changes (DDL commands) applied to the replica since start.", NULL,
                          (double)m->ddl_applied);
    rt_prometheus_gauge(out, "rt_subscriber_lag_records", "Records announced but not yet applied.",
                        NULL, (double)m->lag_records);
    rt_prometheus_gauge(out, "rt_subscriber_lag_seconds",
                        "Age of the last applied source commit; 0 when caught up.", NULL,
                        m->lag_seconds);
    rt_prometheus_counter(out, "rt_subscriber_conflicts_total",
                          "Changes that did not match the replica's rows.", NULL,
                          (double)m->conflicts);
    rt_prometheus_counter(out, "rt_subscriber_reconnects_total",
                          "Reconnections to the publisher since start.", NULL,
                          (double)m->reconnects);
    rt_prometheus_counter(out, "rt_subscriber_bad_frames_total",
                          "Frames from the publisher dropped as malformed.", NULL,
                          (double)m->bad_frames);
    const rt_copy_progress_t none = {0}, *c = m->copy ? m->copy : &none;
    const struct {
        const char *name, *help;
        double v;
    } copy[] = {
        {"rt_subscriber_copy_tables_done", "Tables the initial copy has copied (0 when none runs).",
         (double)c->tables_done},
        {"rt_subscriber_copy_tables_total", "Tables the initial copy copies.",
         (double)c->tables_total},
        {"rt_subscriber_copy_rows", "Rows the initial copy loaded so far.", (double)c->rows},
        {"rt_subscriber_copy_bytes", "COPY bytes the initial copy loaded so far.",
         (double)c->bytes},
        {"rt_subscriber_copy_bytes_total",
         "Estimate of the COPY bytes the initial copy loads in all.", (double)c->bytes_total},
        {"rt_subscriber_copy_elapsed_seconds", "Time the initial copy has been copying.",
         (double)c->elapsed_ms / 1000.0},
    };
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++)
        rt_prometheus_gauge(out, copy[i].name, copy[i].help, NULL, copy[i].v);
}

/* The "copy" member of /api/status: null, or how far the initial copy is. */
static void s_copy_json(rt_buf_t *out, const rt_copy_progress_t *c)
{
    if (!c) {
        rt_buf_puts(out, ",\"copy\":null");
        return;
    }
    double secs = (double)c->elapsed_ms / 1000.0;
    double bytes_per_s = secs > 0 ? (double)c->bytes / secs : 0;
    rt_buf_printf(out,
                  ",\"copy\":{\"tables_done\":%" PRIu64 ",\"tables_total\":%" PRIu64
                  ",\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"bytes_total\":%" PRIu64
                  ",\"elapsed_ms\":%" PRIu64 ",\"rows_per_s\":%.1f,\"seconds_left\":",
                  c->tables_done, c->tables_total, c->rows, c->bytes, c->bytes_total, c->elapsed_ms,
                  secs > 0 ? (double)c->rows / secs : 0.0);
    if (bytes_per_s <= 0)
        rt_buf_puts(out, "null}");
    else if (c->bytes_total > c->bytes)
        rt_buf_printf(out, "%.0f}", (double)(c->bytes_total - c->bytes) / bytes_per_s);
    else
        rt_buf_puts(out, "0}");
}

void rt_metrics_subscriber_json(rt_buf_t *out, const rt_metrics_subscriber_t *m)
{
    rt_buf_puts(out, "{\"role\":\"subscriber\",\"name\":");
    rt_buf_json_string(out, m->name ? m->name : "");
    rt_buf_puts(out, ",\"publisher\":");
    rt_buf_json_string(out, m->publisher ? m->publisher : "");
    rt_buf_puts(out, ",\"source\":");
    if (m->source)
        rt_buf_json_string(out, m->source);
    else
        rt_buf_puts(out, "null");
    /* JSON has no NaN or infinity. */
    double lag = isfinite(m->lag_seconds) && m->lag_seconds > 0 ? m->lag_seconds : 0;
    rt_buf_printf(out,
                  ",\"state\":\"%s\",\"connected\":%s,\"applied_seq\":%" PRIu64
                  ",\"head_seq\":%" PRIu64 ",\"lag_records\":%" PRIu64 ",\"lag_seconds\":%.3f"
                  ",\"applied_txns\":%" PRIu64 ",\"applied_rows\":%" PRIu64
                  ",\"conflicts\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"bad_frames\":%" PRIu64,
                  rt_sub_state_name(m->state), m->connected ? "true" : "false", m->applied_seq,
                  m->head_seq, m->lag_records, lag, m->applied_txns, m->applied_rows, m->conflicts,
                  m->reconnects, m->bad_frames);
    s_copy_json(out, m->copy);
    rt_buf_putc(out, '}');
}
