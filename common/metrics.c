/* common/metrics.c - Prometheus text exposition 0.0.4 and the daemons' /metrics bodies. */
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NDEBUG
static bool s_name_ok(const char *name, bool colon)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(p > name && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}
#endif

/* Appends s with backslash and newline escaped, and the double quote too when quote. */
static void s_escaped(rt_buf_t *out, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (!esc)
            continue;
        rt_buf_append(out, run, (size_t)(s - run));
        rt_buf_puts(out, esc);
        run = s + 1;
    }
    rt_buf_append(out, run, (size_t)(s - run));
}

static void s_value(rt_buf_t *out, double v)
{
    if (isnan(v)) {
        rt_buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        rt_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) {
        rt_buf_printf(out, "%" PRId64, (int64_t)v);
        return;
    }
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    rt_buf_puts(out, text);
}

void rt_metrics_family(rt_buf_t *out, const char *name, const char *type, const char *help)
{
    assert(s_name_ok(name, true));
    assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
           strcmp(type, "untyped") == 0);
    rt_buf_printf(out, "# HELP %s ", name);
    s_escaped(out, help ? help : "", false);
    rt_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

void rt_metrics_sample(rt_buf_t *out, const char *name, const rt_metric_label_t *labels,
                       double value)
{
    assert(s_name_ok(name, true));
    rt_buf_puts(out, name);
    if (labels && labels[0].name) {
        rt_buf_putc(out, '{');
        for (const rt_metric_label_t *l = labels; l->name; l++) {
            assert(s_name_ok(l->name, false) && strncmp(l->name, "__", 2) != 0);
            rt_buf_printf(out, "%s%s=\"", l == labels ? "" : ",", l->name);
            s_escaped(out, l->value ? l->value : "", true);
            rt_buf_putc(out, '"');
        }
        rt_buf_putc(out, '}');
    }
    rt_buf_putc(out, ' ');
    s_value(out, value);
    rt_buf_putc(out, '\n');
}

void rt_metrics_counter(rt_buf_t *out, const char *name, const char *help,
                        const rt_metric_label_t *labels, double value)
{
    rt_metrics_family(out, name, "counter", help);
    rt_metrics_sample(out, name, labels, value);
}

void rt_metrics_gauge(rt_buf_t *out, const char *name, const char *help,
                      const rt_metric_label_t *labels, double value)
{
    rt_metrics_family(out, name, "gauge", help);
    rt_metrics_sample(out, name, labels, value);
}

void rt_metrics_publisher(rt_buf_t *out, const rt_metrics_publisher_t *m)
{
    rt_metrics_counter(out, "rt_publisher_captured_transactions_total",
                       "Source transactions stored in the outbox since start.", NULL,
                       (double)m->captured_txns);
    rt_metrics_counter(out, "rt_publisher_captured_rows_total",
                       "Row changes stored in the outbox since start.", NULL,
                       (double)m->captured_rows);
    rt_metrics_counter(out, "rt_publisher_filtered_transactions_total",
                       "Source transactions dropped because of their replication origin.", NULL,
                       (double)m->filtered_txns);
    rt_metrics_counter(out, "rt_publisher_skipped_transactions_total",
                       "Source transactions dropped as already stored, after a restart.", NULL,
                       (double)m->skipped_txns);
    rt_metrics_counter(out, "rt_publisher_streamed_transactions_total",
                       "Source transactions received in blocks before their commit, since start.",
                       NULL, (double)m->streamed_txns);
    rt_metrics_gauge(out, "rt_publisher_streaming_transactions",
                     "Source transactions open and being received in blocks now.", NULL,
                     (double)m->streaming_txns);
    rt_metrics_gauge(out, "rt_publisher_source_connected",
                     "1 while the replication stream from the source is up.", NULL,
                     m->source_connected ? 1 : 0);
    rt_metrics_gauge(out, "rt_publisher_outbox_full",
                     "1 while the outbox is at its size limit and reading from the source waits.",
                     NULL, m->outbox_full ? 1 : 0);
    rt_metrics_gauge(out, "rt_publisher_outbox_records", "Records in the outbox.", NULL,
                     (double)m->outbox_records);
    rt_metrics_gauge(out, "rt_publisher_outbox_bytes", "Bytes used by the outbox.", NULL,
                     (double)m->outbox_bytes);
    rt_metrics_gauge(out, "rt_publisher_first_seq", "Oldest record kept in the outbox.", NULL,
                     (double)m->first_seq);
    rt_metrics_gauge(out, "rt_publisher_head_seq", "Newest durable record in the outbox.", NULL,
                     (double)m->head_seq);
    rt_metrics_gauge(out, "rt_publisher_received_lsn",
                     "Newest WAL position received from the source, as a number.", NULL,
                     (double)m->received_lsn);
    rt_metrics_gauge(out, "rt_publisher_confirmed_lsn",
                     "Flush LSN confirmed to the source, as a number.", NULL,
                     (double)m->confirmed_lsn);
    rt_metrics_counter(out, "rt_publisher_bad_frames_total",
                       "Frames from peers dropped as malformed.", NULL, (double)m->bad_frames);

    static const struct {
        const char *name;
        const char *help;
    } fam[] = {
        {"rt_publisher_subscriber_acked_seq", "Last seq the subscriber acknowledged."},
        {"rt_publisher_subscriber_lag_records", "Records the subscriber has yet to apply."},
        {"rt_publisher_subscriber_up", "1 while the subscriber is heard from."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        rt_metrics_family(out, fam[f].name, "gauge", fam[f].help);
        for (size_t i = 0; i < m->nsubs; i++) {
            const rt_metrics_pub_sub_t *s = &m->subs[i];
            rt_metric_label_t labels[] = {{"subscriber", s->name}, {NULL, NULL}};
            double v = f == 0   ? (double)s->acked_seq
                       : f == 1 ? (double)s->lag_records
                                : (s->up ? 1 : 0);
            rt_metrics_sample(out, fam[f].name, labels, v);
        }
    }
}

void rt_metrics_subscriber(rt_buf_t *out, const rt_metrics_subscriber_t *m)
{
    rt_metrics_gauge(out, "rt_subscriber_up", "1 while the publisher answers.", NULL,
                     m->connected ? 1 : 0);
    rt_metrics_gauge(out, "rt_subscriber_applied_seq",
                     "Last seq applied and committed on the replica.", NULL,
                     (double)m->applied_seq);
    rt_metrics_gauge(out, "rt_subscriber_head_seq", "Newest seq the publisher announced.", NULL,
                     (double)m->head_seq);
    rt_metrics_counter(out, "rt_subscriber_applied_transactions_total",
                       "Source transactions applied to the replica since start.", NULL,
                       (double)m->applied_txns);
    rt_metrics_counter(out, "rt_subscriber_applied_rows_total",
                       "Row changes applied to the replica since start.", NULL,
                       (double)m->applied_rows);
    rt_metrics_gauge(out, "rt_subscriber_lag_records", "Records announced but not yet applied.",
                     NULL, (double)m->lag_records);
    rt_metrics_gauge(out, "rt_subscriber_lag_seconds",
                     "Age of the last applied source commit; 0 when caught up.", NULL,
                     m->lag_seconds);
    rt_metrics_counter(out, "rt_subscriber_conflicts_total",
                       "Changes that did not match the replica's rows.", NULL,
                       (double)m->conflicts);
    rt_metrics_counter(out, "rt_subscriber_reconnects_total",
                       "Reconnections to the publisher since start.", NULL, (double)m->reconnects);
    rt_metrics_counter(out, "rt_subscriber_bad_frames_total",
                       "Frames from the publisher dropped as malformed.", NULL,
                       (double)m->bad_frames);
}
