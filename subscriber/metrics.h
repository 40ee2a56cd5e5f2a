/* subscriber/metrics.h - the subscriber's /metrics body (Prometheus text) and /api/status JSON. */
#ifndef RT_SUBSCRIBER_METRICS_H
#define RT_SUBSCRIBER_METRICS_H

#include "buf.h"
#include "prometheus.h"
#include "rt.h"
#include "wire.h"

/* The /metrics body is served as RT_PROMETHEUS_CONTENT_TYPE (prometheus.h). */

/* The figures of a subscriber's /metrics and /api/status. */
typedef struct {
    const char *name;         /* this subscriber's name */
    const char *publisher;    /* the publisher's ROUTER endpoint */
    const char *source;       /* the source's name, or NULL before the first WELCOME */
    int state;                /* rt_sub_state_t (wire.h): RT_SUB_COPYING while copy is set */
    bool connected;           /* the publisher answered recently */
    bool error;               /* in state error: stopped at, or retrying, a change it cannot
                                 apply, or its replica is down (whether the publisher answers
                                 or not) */
    uint64_t applied_seq;     /* last seq applied and committed on the replica */
    uint64_t head_seq;        /* newest seq the publisher announced */
    uint64_t applied_txns;    /* source transactions applied since start */
    uint64_t streamed_txns;   /* of which applied while they ran (from their blocks) */
    uint64_t applied_rows;    /* row changes applied since start */
    uint64_t sequences_moved; /* replica sequences moved forward since start */
    uint64_t ddl_applied;     /* DDL commands applied since start */
    uint64_t lag_records;     /* head_seq - applied_seq (0 if ahead) */
    double lag_seconds;       /* now - source commit time of the last applied transaction,
                                 0 when caught up */
    uint64_t conflicts;       /* changes that did not match the replica's rows */
    uint64_t reconnects;      /* reconnections to the publisher since start */
    uint64_t bad_frames;      /* frames dropped as malformed */

    /* The initial copy while one runs (borrowed), else NULL. */
    const rt_copy_progress_t *copy;
} rt_metrics_subscriber_t;

/* Appends the whole /metrics body of a subscriber: rt_subscriber_up, _error, _applied_seq,
 * _head_seq, _applied_transactions_total, _streamed_transactions_total, _applied_rows_total,
 * _sequences_moved_total, _ddl_applied_total, _lag_records, _lag_seconds, _conflicts_total,
 * _reconnects_total, _bad_frames_total, and the initial copy's _copy_tables_done,
 * _copy_tables_total, _copy_rows, _copy_bytes, _copy_bytes_total, _copy_elapsed_seconds (all 0 when
 * no copy runs). Output errors are sticky in out (rt_buf_error). */
void rt_metrics_subscriber(rt_buf_t *out, const rt_metrics_subscriber_t *m);

/* Appends the subscriber's status, its /api/status body, as one JSON object without a
 * trailing newline (rtctl does not read it):
 * {"role":"subscriber","name":..,"publisher":..,"source":.. or null,"state":"streaming",
 *  "connected":true,"applied_seq":N,"head_seq":N,"lag_records":N,"lag_seconds":F,
 *  "applied_txns":N,"applied_rows":N,"conflicts":N,"reconnects":N,"bad_frames":N,
 *  "copy":null}
 * While an initial copy runs, "state" is "copying" and "copy" is
 * {"tables_done":N,"tables_total":N,"rows":N,"bytes":N,"bytes_total":N,"elapsed_ms":N,
 *  "rows_per_s":F,"seconds_left":F or null}: bytes_total is an estimate (0: unknown yet),
 * seconds_left is null until there is a rate and 0 once bytes reach bytes_total. */
void rt_metrics_subscriber_json(rt_buf_t *out, const rt_metrics_subscriber_t *m);

#endif
