/* subscriber/metrics.c - the subscriber's /metrics body (Prometheus text) and /api/status JSON. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>

#include "wire.h"

void rt_metrics_subscriber(rt_buf_t *out, const rt_metrics_subscriber_t *m)
{
    rt_prometheus_gauge(out, "rt_subscriber_up", "1 while the publisher answers.", NULL,
                        m->connected ? 1 : 0);
    rt_prometheus_gauge(out, "rt_subscriber_applied_seq",
                        "Last seq applied and committed on the replica.", NULL,
                        (double)m->applied_seq);
    rt_prometheus_gauge(out, "rt_subscriber_head_seq", "Newest seq the publisher announced.", NULL,
                        (double)m->head_seq);
    rt_prometheus_counter(out, "rt_subscriber_applied_transactions_total",
                          "Source transactions applied to the replica since start.", NULL,
                          (double)m->applied_txns);
    rt_prometheus_counter(out, "rt_subscriber_applied_rows_total",
                          "Row changes applied to the replica since start.", NULL,
                          (double)m->applied_rows);
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
                  ",\"conflicts\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"bad_frames\":%" PRIu64
                  "}",
                  rt_sub_state_name(m->state), m->connected ? "true" : "false", m->applied_seq,
                  m->head_seq, m->lag_records, lag, m->applied_txns, m->applied_rows, m->conflicts,
                  m->reconnects, m->bad_frames);
}
