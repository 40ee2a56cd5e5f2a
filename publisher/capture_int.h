/* publisher/capture_int.h - what the pieces of the capture share (not for other modules).
 *
 * source.c sets the source up and opens the replication stream; capture.c reads it and
 * builds records; batch.c stores them (through committer.c); spool.c keeps the transactions
 * streamed before their commit and, at the commit, hands their messages back to capture.c;
 * blocks.c publishes their changes before the commit. */
#ifndef RT_CAPTURE_INT_H
#define RT_CAPTURE_INT_H

#include <czmq.h>
#include <libpq-fe.h>

#include "capture.h"
#include "committer.h"
#include "outbox.h"
#include "pgoutput.h"
#include "wire.h"

/* Transactions whose origin starts with this were applied here by an rt subscriber:
 * they are never sent back. */
#define RT_ORIGIN_PREFIX "rt_"
/* rt's own schema on a node (rt.conflicts, rt.sync_state...): its changes are never
 * captured, so that a node that is a replica too does not send them on. */
#define RT_OWN_SCHEMA "rt"

/* How often the source's sequences are read (sequences.c). */
#define RT_SEQ_POLL_MS 1000

/* Records cut and not yet stored: one buffer, offsets per record (capture.c). */
typedef struct {
    char *data;      /* the records, back to back */
    size_t len, cap; /* bytes used and allocated */
    size_t *offs;    /* nrecs + 1 offsets into data */
    size_t nrecs, offs_cap;
    rt_outbox_rec_t *recs; /* views of the records, for the put */
    size_t recs_cap;
} rt_capture_batch_t;

/* The source's sequences, polled (sequences.c). */
typedef struct rt_seqs_t rt_seqs_t;

/* A transaction streamed before its commit and its spool (spool.c). */
typedef struct rt_spool_txn_t rt_spool_txn_t;

struct rt_capture_t {
    rt_capture_opts_t opts;       /* copies of the option strings */
    rt_outbox_t *outbox;          /* borrowed */
    PGconn *conn;                 /* replication connection, NULL while down */
    rt_pgoutput_t *decoder;       /* pgoutput decoder */
    rt_record_builder_t *builder; /* the record being built */
    zhashx_t *rels;               /* relid -> s_rel_t */
    rt_value_t *vals_old;         /* scratch row images */
    rt_value_t *vals_new;
    size_t vals_cap;
    uint32_t *trunc; /* scratch truncate indexes */
    size_t trunc_cap;

    /* The source transaction being read. */
    bool in_txn;        /* between B and C */
    bool skip;          /* dropped: own origin or already stored */
    bool filtered;      /* dropped because of its origin */
    bool building;      /* builder holds a started record */
    bool first_chunk;   /* the next record cut is the transaction's first */
    bool expect_origin; /* the message after B may be O */
    uint32_t xid;
    rt_lsn_t commit_lsn; /* from B: the commit record's LSN */
    int64_t commit_ts;
    char origin[128]; /* origin name of the transaction, "" if none */
    uint64_t epoch;   /* bumped at every record start */
    uint64_t txn_rows;

    /* Records cut but not yet stored, in two batches: `batch` fills while `flight`, cut
     * before it, is being committed (group commit: the next commit takes everything cut
     * during this one). Seqs: durable head < flight's < batch's < next_seq. */
    rt_capture_batch_t batch;   /* filling */
    rt_capture_batch_t flight;  /* with the committer, or held after RT_EFULL; else empty */
    rt_committer_t *committer;  /* the outbox commit's thread */
    bool flight_held;           /* the outbox refused flight (full): submitted again later */
    int64_t full_retry_ms;      /* when flight_held: not submitted again before this */
    int64_t commit_gap_ms;      /* a small batch is not submitted before this (batch.c) */
    rt_outbox_pos_t flight_pos; /* position stored with flight */
    uint64_t next_seq;          /* seq of the next record cut (tracked here, never read back
                                 * from the outbox while a batch is in flight) */
    rt_outbox_pos_t durable;    /* position stored in the outbox */
    rt_outbox_pos_t pending;    /* position once every record cut is stored */
    bool pending_dirty;         /* pending differs from the position last submitted
                                 * (flight_pos while a flight is active, else durable) */

    rt_seqs_t *seqs;      /* the source's sequences */
    bool seq_building;    /* builder holds a started record of sequences */
    int64_t seq_check_ms; /* next look at the sequences' poll */

    rt_capture_stats_t stats;
    rt_lsn_t idle_lsn; /* walEnd of the last keepalive while idle */
    int64_t last_feedback_ms;
    bool reply_requested;
    int64_t reconnect_at_ms; /* when down: next attempt */
    int reconnect_delay_ms;
    bool full_logged;

    /* Stored chunks (seqs from..to) of a transaction whose last chunk is not stored:
     * when the source sends it again, its first `changes` changes are skipped. */
    struct {
        bool active;
        uint32_t xid;
        rt_lsn_t commit_lsn;
        uint64_t changes;
        uint64_t from, to;
    } resume;
    uint64_t skip_changes; /* changes of the transaction being read already stored */

    /* Transactions streamed before their commit (few at a time), spool.c's. */
    rt_spool_txn_t **streams;
    size_t nstreams, streams_cap;
    rt_spool_txn_t *cur; /* the stream of the current block, NULL outside one */
    struct {
        rt_record_builder_t *builder; /* the block (STREAM) being built */
        bool building;                /* builder holds a started block */
        uint64_t epoch;               /* bumped at every block start */
        uint32_t xid, subxid;         /* whose changes it holds */
    } blk;
    struct {
        rt_spool_txn_t *st; /* being read back, NULL if none */
        rt_lsn_t commit_lsn, end_lsn;
        int64_t commit_ts;
        char *buf; /* one spooled message */
        size_t cap;
    } replay;
};

/* ---- source.c: set-up SQL on the source. */

/* Checks that the source's wal_level is logical and creates the publication FOR ALL
 * TABLES when missing, on a connection of its own. 0, or RT_EDB (logged). */
int rt_source_prepare(const rt_capture_opts_t *opts) RT_WUR;

/* Opens the replication connection, creates the slot when missing and starts
 * streaming (pgoutput protocol 2, streaming on). With wait_busy, a slot another WAL
 * sender holds is waited for, up to RT_SLOT_BUSY_WAIT_MS (the WAL sender of a publisher
 * that was killed holds it until it notices). 0 with the connection in *conn (the caller
 * PQfinishes it), or RT_EDB (logged). */
int rt_source_start(const rt_capture_opts_t *opts, bool wait_busy, PGconn **conn) RT_WUR;
#define RT_SLOT_BUSY_WAIT_MS 60000

/* ---- ddl.c: --ddl on. */

/* Installs or upgrades rt's DDL capture on the source (schema rt, table rt.ddl_log, its
 * event triggers; a superuser is needed unless it is installed at this version already)
 * and makes sure publication carries rt.ddl_log. RT_OK; RT_EINVAL (logged: what to do) or
 * RT_EDB. */
int rt_ddl_install(PGconn *conn, const char *publication) RT_WUR;

/* ---- capture.c: the transaction being read, one pgoutput message at a time (protocol
 * 1 form: Begin, Origin, Relation, Insert/Update/Delete/Truncate, Commit). spool.c
 * replays a committed streamed transaction through them. Each returns 0 or a negative
 * RT_E* code, logged: RT_EPROTO (out of place), RT_EIO (the stored records do not match
 * the source), RT_ENOMEM, or an error of the outbox. */
int rt_capture_on_begin(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
int rt_capture_on_origin(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
int rt_capture_on_relation(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
int rt_capture_on_change(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
int rt_capture_on_commit(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;

/* ---- capture.c: the pieces of a change, for blocks.c. */

/* Whether change m touches only rt's own tables (a TRUNCATE that names others too
 * loses rt's own from its list when it is built). */
bool rt_capture_own_change(const rt_capture_t *self, const rt_pgo_msg_t *m);
/* Whether m is a row of rt.ddl_log (a DDL change) and DDL is captured. */
bool rt_capture_is_ddl(const rt_capture_t *self, const rt_pgo_msg_t *m);
/* Adds row change m (I, U, D; T unless block) to builder b: the record being built, or
 * with block the block being built; a relation's descriptor goes in first where that
 * record or block lacks it. RT_OK, RT_EPROTO (a relation not described), RT_ENOMEM. */
int rt_capture_build_change(rt_capture_t *self, bool block, rt_record_builder_t *b,
                            const rt_pgo_msg_t *m) RT_WUR;

/* ---- blocks.c: blocks of a transaction still running (STREAM), for spool.c. Each
 * block holds changes of one subtransaction of one block of the source's stream; its
 * number counts from 1 in *blocks. */

/* Adds row change m of subtransaction subxid of streamed transaction xid to the block
 * being built, first cutting and publishing it when it holds another subtransaction's;
 * cuts it when full. *unfit comes back true (and the block is dropped) when m cannot go
 * in a block (a TRUNCATE, a DDL change, a block over S_BLOCK_MAX_BYTES): the
 * transaction is then applied after its commit only. RT_OK, RT_EPROTO, RT_ENOMEM. */
int rt_capture_block_add(rt_capture_t *self, uint32_t xid, uint32_t subxid, const rt_pgo_msg_t *m,
                         uint64_t *blocks, bool *unfit) RT_WUR;
/* Cuts and publishes the block being built, if any. RT_OK or RT_ENOMEM / RT_EINVAL. */
int rt_capture_block_cut(rt_capture_t *self, uint64_t *blocks) RT_WUR;
/* Drops the block being built, if any. */
void rt_capture_block_drop(rt_capture_t *self);

/* ---- sequences.c: the source's sequences, read every RT_SEQ_POLL_MS. */

rt_seqs_t *rt_seqs_new(const char *dsn, const char *publication);
void rt_seqs_destroy(rt_seqs_t **self_p);

/* Receives a sequence whose last value moved: 0, or a negative RT_E* code that stops
 * the pump (the value then counts as handed over). */
typedef int(rt_seqs_fn)(void *arg, const char *schema, const char *name, int64_t last_value);

/* Sends a poll when one is due and collects its answer, never waiting for the source
 * (but to connect, at most 2 s). Calls fn for each sequence whose value differs from
 * the one last handed over, in name order. Returns how many it handed over, or fn's
 * error. A source that cannot be read is logged once and retried. */
int rt_seqs_pump(rt_seqs_t *self, rt_seqs_fn *fn, void *arg) RT_WUR;

/* Forgets what was handed over: the next answer hands over every sequence (a
 * subscriber that just copied its tables needs them all). */
void rt_seqs_resend(rt_seqs_t *self);

/* ---- batch.c: records cut and not stored yet, and their commits. */

/* Appends a record cut with seq self->next_seq to the filling batch and publishes it.
 * RT_OK or RT_ENOMEM. */
int rt_batch_add(rt_capture_t *self, const void *data, size_t len) RT_WUR;
void rt_batch_free(rt_capture_batch_t *b);
/* True while flight is with the committer or held (refused by a full outbox). */
bool rt_batch_flight_active(const rt_capture_t *self);
/* True when the filling batch reached batch_bytes while flight is active: reading
 * from the source waits for the commit. */
bool rt_batch_full(const rt_capture_t *self);
/* Moves the batches along without waiting (the commit that ended, flight again after a
 * full outbox, the filling batch): only the outbox's failure is returned (fatal). */
int rt_batch_flush(rt_capture_t *self) RT_WUR;
/* Milliseconds until rt_batch_flush would hand over the filling batch to an idle committer
 * (0: now; a small one waits for the gap between commits), at most limit (limit: nothing
 * to hand over, or the committer is busy or holds a batch the full outbox refused). */
int rt_batch_wait_ms(const rt_capture_t *self, int limit);
/* Stores every record cut and the pending position and waits until they are durable.
 * RT_OK; RT_EFULL when the full outbox refused a batch (held, blocked set); or the
 * outbox's failure (fatal). */
int rt_batch_flush_wait(rt_capture_t *self) RT_WUR;

/* ---- capture.c, for batch.c. */

/* Sends the source its standby status: flushed up to confirmed_lsn (WAL it may forget);
 * force: now, else when the walsender asked or FEEDBACK_INTERVAL_MS passed. */
void rt_capture_send_feedback(rt_capture_t *self, bool force);

/* ---- spool.c: transactions streamed before their commit. Each returns 0 or a negative
 * RT_E* code, logged: RT_EPROTO (out of place), RT_EIO (spool file), RT_ENOMEM. */

/* Stream Start (S): opens the transaction's spool at its first block. */
int rt_spool_on_start(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
/* Stream Stop (E): the block ends (and the block being published with it). */
int rt_spool_on_stop(rt_capture_t *self) RT_WUR;
/* A message inside a block; buf and len are its bytes as received. */
int rt_spool_on_message(rt_capture_t *self, const rt_pgo_msg_t *m, const char *buf,
                        size_t len) RT_WUR;
/* Stream Abort (A) of the transaction or of one of its subtransactions. */
int rt_spool_on_abort(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
/* Stream Commit (c): the transaction becomes self->replay.st, read back by
 * rt_spool_replay. */
int rt_spool_on_commit(rt_capture_t *self, const rt_pgo_msg_t *m) RT_WUR;
/* Reads the committed transaction's spool back through the rt_capture_on_* handlers
 * until the filling batch holds rt_spool_budget bytes, and ends it with its commit.
 * RT_EIO also when a spooled message is out of place. */
int rt_spool_replay(rt_capture_t *self) RT_WUR;
/* Bytes of batch a replay fills per pump (the chunks reach subscribers as they are cut,
 * and the batch stays small). */
size_t rt_spool_budget(const rt_capture_t *self);
/* Drops every open streamed transaction and its spool (the stream broke or stops). */
void rt_spool_drop_all(rt_capture_t *self);

#endif
