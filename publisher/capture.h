/* publisher/capture.h - the replication stream: pgoutput in, outbox records out, flush LSN back. */
#ifndef RT_CAPTURE_H
#define RT_CAPTURE_H

#include "outbox.h"
#include "rt.h"
#include "wire.h"

typedef struct rt_capture_t rt_capture_t;

/* Receives each record as soon as it is cut, with its seq, before it is durable (live
 * publication). data is valid only during the call. */
typedef void(rt_capture_publish_fn)(void *arg, uint64_t seq, const void *data, size_t len);

/* Receives a STREAM, STREAM_ABORT or STREAM_COMMIT message about a transaction still
 * running on the source (schemas/protocol.md, "Streamed transactions"), run_id left 0;
 * valid only during the call. */
typedef void(rt_capture_stream_fn)(void *arg, const rt_msg_t *m);

typedef struct {
    const char *dsn;         /* source connection string (without replication=) */
    const char *name;        /* source name */
    const char *slot;        /* replication slot, created if missing */
    const char *publication; /* publication, created FOR ALL TABLES if missing */
    uint64_t batch_bytes;    /* group commit: flush to the outbox past this many bytes */
    const char *spool_dir;   /* where transactions streamed before their commit are spooled */
    bool ddl;                /* --ddl on: capture DDL (rt.ddl_log) */
    rt_capture_publish_fn *publish; /* each record as it is cut, or NULL */
    void *publish_arg;              /* publish's first argument */
    rt_capture_stream_fn *stream;   /* blocks of transactions still running, or NULL */
} rt_capture_opts_t;

/* Counters and positions for status and metrics. */
typedef struct {
    rt_lsn_t received_lsn;   /* newest WAL position seen from the source */
    rt_lsn_t confirmed_lsn;  /* flush LSN confirmed to the source */
    uint64_t txns;           /* source transactions stored */
    uint64_t rows;           /* row changes stored */
    uint64_t filtered_txns;  /* transactions dropped: rt's own origins */
    uint64_t skipped_txns;   /* transactions dropped: already stored (after a restart) */
    uint64_t streamed_txns;  /* transactions that arrived in blocks before their commit */
    uint64_t streaming_txns; /* such transactions now open (being spooled) */
    uint64_t sequences;      /* sequence values stored (records of sequences) */
    uint64_t ddl;            /* DDL commands stored */
    uint64_t commits;        /* outbox commits (write transactions) of records and position */
    uint64_t stored_records; /* records those commits stored */
    bool connected;          /* the replication stream is up */
    bool blocked;            /* the outbox is full: reading from the source paused */
} rt_capture_stats_t;

/* Connects to the source, checks wal_level, creates the publication and slot when
 * missing, starts the outbox's commit thread and starts streaming. Returns NULL on
 * failure, logged (unreachable source, wrong wal_level, missing privileges). outbox is
 * borrowed, and used from the calling thread only (the commit thread writes through
 * rt_outbox_put_write). */
rt_capture_t *rt_capture_new(const rt_capture_opts_t *opts, rt_outbox_t *outbox);
/* Stores every record cut and waits for it (what cannot be stored, the source sends
 * again), stops the commit thread and the stream; clears *self_p. Safe on NULL. */
void rt_capture_destroy(rt_capture_t **self_p);

/* The socket to poll for input, or -1 while disconnected, blocked (outbox full), or
 * while a full batch waits for the commit under way. */
int rt_capture_fd(rt_capture_t *self);

/* The outbox commit's socket to poll (zmq_pollitem_t.socket): readable when a commit
 * ended; then pump. */
void *rt_capture_commit_socket(rt_capture_t *self);

/* How long the caller may wait for input before pumping again, in milliseconds, at most
 * limit: 0 while a committed streamed transaction is being stored and there is room for
 * more of it, less while records wait for the gap between outbox commits. */
int rt_capture_wait_ms(const rt_capture_t *self, int limit);

/* Reads what the source has sent and cuts it into records, each handed to
 * opts.publish at once; hands batches to the outbox's commit thread, one commit at a
 * time (group commit: the next takes everything cut during the previous one), and
 * confirms to the source only what a commit made durable. Also sends periodic status,
 * retries a blocked outbox and reconnects after the source went away. Call when the
 * socket or the commit socket is readable and at least every few hundred milliseconds.
 * Returns 0, or RT_EIO when the outbox failed (fatal). */
int rt_capture_pump(rt_capture_t *self) RT_WUR;

rt_capture_stats_t rt_capture_stats(const rt_capture_t *self);

/* Stores every sequence again at the next poll, moved or not: a subscriber that copied
 * its tables starts after the records that carried them. */
void rt_capture_resend_sequences(rt_capture_t *self);

#endif
