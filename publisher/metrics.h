/* publisher/metrics.h - the publisher's /metrics body (Prometheus text). */
#ifndef RT_PUBLISHER_METRICS_H
#define RT_PUBLISHER_METRICS_H

#include "buf.h"
#include "prometheus.h"
#include "rt.h"
#include "wire.h"

/* The body is served as RT_PROMETHEUS_CONTENT_TYPE (prometheus.h). */

/* One subscriber known to the publisher. */
typedef struct {
    const char *name;        /* subscriber name (label subscriber=) */
    uint64_t acked_seq;      /* last seq it acknowledged */
    uint64_t lag_records;    /* head_seq - acked_seq (0 if ahead) */
    bool up;                 /* heard from recently (its state is not offline) */
    bool error;              /* it reports state error (stopped at, or retrying, a change) */
    double lag_seconds;      /* its lag as STATUS computes it (lag_ms), 0 when unknown */
    rt_copy_progress_t copy; /* its initial copy while it is copying (all 0 otherwise) */
} rt_metrics_pub_sub_t;

/* The figures of a publisher's /metrics. */
typedef struct {
    uint64_t captured_txns;           /* source transactions stored since start */
    uint64_t captured_rows;           /* row changes stored since start */
    uint64_t captured_sequences;      /* sequence values stored since start */
    uint64_t captured_ddl;            /* DDL commands stored since start */
    uint64_t filtered_txns;           /* transactions dropped because of their origin */
    uint64_t skipped_txns;            /* transactions dropped as already stored (after a restart) */
    uint64_t streamed_txns;           /* transactions that arrived in blocks before their commit */
    uint64_t streaming_txns;          /* such transactions now open, being spooled */
    bool source_connected;            /* the replication stream is up */
    bool outbox_full;                 /* reading from the source is paused: outbox at its limit */
    uint64_t outbox_records;          /* records in the outbox */
    uint64_t outbox_bytes;            /* bytes used by the outbox */
    uint64_t outbox_limit_bytes;      /* its size limit, --max-outbox-mb (0: none) */
    uint64_t outbox_commits;          /* outbox commits of records since start */
    uint64_t outbox_commit_records;   /* records those commits stored */
    uint64_t first_seq;               /* oldest record kept (0: empty) */
    uint64_t head_seq;                /* newest durable record */
    rt_lsn_t received_lsn;            /* newest WAL position received from the source */
    rt_lsn_t confirmed_lsn;           /* flush LSN confirmed to the source */
    int64_t retained_wal_bytes;       /* WAL the slot retains on the source (-1: unknown) */
    int64_t source_lag_bytes;         /* source's current LSN - slot's confirmed (-1: unknown) */
    int64_t source_lag_ms;            /* flush_lag of the WAL sender (-1: unknown) */
    uint64_t bad_frames;              /* frames dropped as malformed */
    uint64_t dropped_peers;           /* ROUTER peers dropped: they did not read */
    size_t nsubs;                     /* entries in subs */
    const rt_metrics_pub_sub_t *subs; /* borrowed for the call */
} rt_metrics_publisher_t;

/* Appends the whole /metrics body of a publisher: rt_publisher_captured_transactions_total,
 * _captured_rows_total, _captured_sequences_total, _captured_ddl_total,
 * _filtered_transactions_total, _skipped_transactions_total, _streamed_transactions_total,
 * _streaming_transactions, _source_connected, _outbox_full, _outbox_records, _outbox_bytes,
 * _outbox_limit_bytes, _outbox_commits_total, _outbox_committed_records_total, _first_seq,
 * _head_seq, _received_lsn, _confirmed_lsn (LSNs as numbers), _slot_retained_wal_bytes,
 * _source_lag_bytes, _source_lag_seconds (an unknown figure: the family without a sample),
 * _bad_frames_total, _dropped_peers_total, and per subscriber rt_publisher_subscriber_acked_seq,
 * _lag_records, _up, _error, _lag_seconds and the initial copy's _copy_* {subscriber="name"}.
 * Output errors are sticky in out (rt_buf_error). */
void rt_metrics_publisher(rt_buf_t *out, const rt_metrics_publisher_t *m);

#endif
