/* common/metrics.h - the daemons' /metrics bodies. */
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include "buf.h"
#include "prometheus.h"
#include "rt.h"

/* ---- The publisher's /metrics. */

/* One subscriber known to the publisher. */
typedef struct {
    const char *name;     /* subscriber name (label subscriber=) */
    uint64_t acked_seq;   /* last seq it acknowledged */
    uint64_t lag_records; /* head_seq - acked_seq (0 if ahead) */
    bool up;              /* heard from recently (its state is not offline) */
} rt_metrics_pub_sub_t;

typedef struct {
    uint64_t captured_txns;           /* source transactions stored since start */
    uint64_t captured_rows;           /* row changes stored since start */
    uint64_t filtered_txns;           /* transactions dropped because of their origin */
    uint64_t skipped_txns;            /* transactions dropped as already stored (after a restart) */
    uint64_t streamed_txns;           /* transactions that arrived in blocks before their commit */
    uint64_t streaming_txns;          /* such transactions now open, being spooled */
    bool source_connected;            /* the replication stream is up */
    bool outbox_full;                 /* reading from the source is paused: outbox at its limit */
    uint64_t outbox_records;          /* records in the outbox */
    uint64_t outbox_bytes;            /* bytes used by the outbox */
    uint64_t first_seq;               /* oldest record kept (0: empty) */
    uint64_t head_seq;                /* newest durable record */
    rt_lsn_t received_lsn;            /* newest WAL position received from the source */
    rt_lsn_t confirmed_lsn;           /* flush LSN confirmed to the source */
    uint64_t bad_frames;              /* frames dropped as malformed */
    size_t nsubs;                     /* entries in subs */
    const rt_metrics_pub_sub_t *subs; /* borrowed for the call */
} rt_metrics_publisher_t;

/* Appends the whole /metrics body of a publisher: rt_publisher_captured_transactions_total,
 * _captured_rows_total, _filtered_transactions_total, _skipped_transactions_total,
 * _source_connected, _outbox_full, _outbox_records, _outbox_bytes, _first_seq, _head_seq,
 * _received_lsn, _confirmed_lsn (LSNs as numbers), _bad_frames_total, and per subscriber
 * rt_publisher_subscriber_acked_seq, _lag_records and _up {subscriber="name"}. */
void rt_metrics_publisher(rt_buf_t *out, const rt_metrics_publisher_t *m);

/* ---- The subscriber's /metrics and /api/status. */

typedef struct {
    const char *name;      /* this subscriber's name */
    const char *publisher; /* the publisher's ROUTER endpoint */
    const char *source;    /* the source's name, or NULL before the first WELCOME */
    int state;             /* rt_sub_state_t (wire.h) */
    bool connected;        /* the publisher answered recently */
    uint64_t applied_seq;  /* last seq applied and committed on the replica */
    uint64_t head_seq;     /* newest seq the publisher announced */
    uint64_t applied_txns; /* source transactions applied since start */
    uint64_t applied_rows; /* row changes applied since start */
    uint64_t lag_records;  /* head_seq - applied_seq (0 if ahead) */
    double lag_seconds;    /* now - source commit time of the last applied transaction,
                              0 when caught up */
    uint64_t conflicts;    /* changes that did not match the replica's rows */
    uint64_t reconnects;   /* reconnections to the publisher since start */
    uint64_t bad_frames;   /* frames dropped as malformed */
} rt_metrics_subscriber_t;

/* Appends the whole /metrics body of a subscriber: rt_subscriber_up, _applied_seq,
 * _head_seq, _applied_transactions_total, _applied_rows_total, _lag_records, _lag_seconds,
 * _conflicts_total, _reconnects_total, _bad_frames_total. */
void rt_metrics_subscriber(rt_buf_t *out, const rt_metrics_subscriber_t *m);

#endif
