/* common/wire.h - MessagePack codec for outbox records and the control messages (schemas/wire.md).
 */
#ifndef RT_WIRE_H
#define RT_WIRE_H

#include "rt.h"

#define RT_WIRE_VERSION 1
/* Largest frame any rt socket accepts (ZMQ_MAXMSGSIZE) and any decoder takes, but for
 * the two that carry rows. */
#define RT_WIRE_MAX_FRAME (64u * 1024 * 1024)
/* Largest REC and COPY_DATA frame: a record holds at least one whole row, and logical
 * decoding sends a row of up to 1 GiB (PostgreSQL's largest message, MaxAllocSize); the
 * rest is room for its encoding and the rows before it. Only the sockets that receive
 * rows (a subscriber's, the initial copy channel) accept frames this large. */
#define RT_WIRE_MAX_RECORD (1040u * 1024 * 1024)
/* A capture flushes a record once its encoded changes pass this size. */
#define RT_RECORD_TARGET_BYTES (64u * 1024)
/* Messages a live (PUB/SUB) queue holds by default on each side: with records of at
 * most ~RT_RECORD_TARGET_BYTES each queue stays under ~64 MiB whatever the
 * transaction sizes; past it the publisher drops live records and subscribers fetch
 * them (schemas/protocol.md). */
#define RT_LIVE_HWM 1024

/* Record flags. A source transaction is one or more records with the same xid:
 * the first has RT_REC_FIRST, the last RT_REC_LAST (a one-record transaction has both). */
#define RT_REC_FIRST 0x01u
#define RT_REC_LAST 0x02u

/* A column value of a row image. */
typedef enum {
    RT_VAL_NULL = 0,      /* SQL NULL */
    RT_VAL_UNCHANGED = 1, /* unchanged TOAST value: not sent, must not be written */
    RT_VAL_TEXT = 2       /* text representation, len bytes at data, and data[len] == '\0' */
} rt_val_kind_t;

typedef struct {
    uint8_t kind;     /* rt_val_kind_t */
    uint32_t len;     /* bytes of data, without the terminating NUL */
    const char *data; /* NUL-terminated text (RT_VAL_TEXT only), borrowed */
} rt_value_t;

/* A column of a relation descriptor. */
typedef struct {
    const char *name; /* NUL-terminated column name */
    uint32_t typoid;  /* source type OID */
    int32_t typmod;   /* source type modifier */
    bool key;         /* part of the replica identity */
} rt_column_t;

/* A relation descriptor, carried by every record that holds rows of it. */
typedef struct {
    const char *schema; /* NUL-terminated schema name */
    const char *table;  /* NUL-terminated table name */
    char replident;     /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint32_t ncols;     /* number of columns */
    rt_column_t *cols;  /* ncols columns */
} rt_relation_t;

/* A schema change (DDL) as the source ran it. Strings are NUL-terminated and borrowed. */
typedef struct {
    const char *tag;         /* command tag, e.g. "ALTER TABLE" */
    const char *search_path; /* the source session's effective search_path, quoted names */
    const char *objects;     /* the objects it made, changed or dropped, one per line */
    const char *command;     /* the top-level statement the client sent */
    uint32_t flags;          /* RT_DDL_NESTED | RT_DDL_PROTECTED */
} rt_ddl_t;

/* rt_ddl_t.flags: the command ran inside another (a function, a DO block): the client's
 * statement is not the DDL itself. */
#define RT_DDL_NESTED 1u
/* It touches a schema rt never writes on a replica (rt, pg_*, information_schema). */
#define RT_DDL_PROTECTED 2u
#define RT_DDL_FLAGS (RT_DDL_NESTED | RT_DDL_PROTECTED)

/* One change of a record. */
typedef struct {
    char op;          /* 'I' insert, 'U' update, 'D' delete, 'T' truncate, 'Q' sequence, 'L' DDL */
    uint32_t rel;     /* I/U/D: index into the record's relations */
    char old_kind;    /* U/D: 'K' key columns, 'O' full old row, 0 none */
    uint32_t nold;    /* values in old (0 or the relation's ncols) */
    rt_value_t *old;  /* the old row image, or NULL */
    uint32_t nnew;    /* values in new (0 or the relation's ncols) */
    rt_value_t *new_; /* I/U: the new row image, or NULL */
    uint8_t trunc_flags;    /* T: 1 = CASCADE, 2 = RESTART IDENTITY */
    uint32_t ntrunc;        /* T: number of relations */
    uint32_t *trunc_rels;   /* T: indexes into the record's relations */
    const char *seq_schema; /* Q: the sequence's schema */
    const char *seq_name;   /* Q: the sequence's name */
    int64_t seq_value;      /* Q: its last value handed out on the source */
    const rt_ddl_t *ddl;    /* L: the schema change */
} rt_change_t;

/* A decoded outbox record. Owned by the decoder object it came from; strings and
 * values point into the frame passed to rt_record_decode(), which must outlive it. */
typedef struct {
    uint64_t seq;         /* outbox sequence number, from 1, dense */
    uint32_t xid;         /* source transaction id */
    uint8_t flags;        /* RT_REC_FIRST | RT_REC_LAST */
    rt_lsn_t commit_lsn;  /* LSN of the source commit record */
    rt_lsn_t end_lsn;     /* end of the commit record (LAST records only, else 0) */
    int64_t commit_ts;    /* source commit time, µs since 2000-01-01 */
    const char *origin;   /* replication origin of the source commit, or NULL */
    uint32_t nrels;       /* relation descriptors */
    rt_relation_t *rels;  /* nrels descriptors */
    uint32_t nchanges;    /* changes, in source order */
    rt_change_t *changes; /* nchanges changes */
} rt_record_t;

/* True when rec is a record of sequences ('Q' changes only: no source transaction). */
bool rt_record_is_sequences(const rt_record_t *rec);

/* ---- Record encoder: builds one record incrementally, no allocation per row. */
typedef struct rt_record_builder_t rt_record_builder_t;

rt_record_builder_t *rt_record_builder_new(void);
void rt_record_builder_destroy(rt_record_builder_t **self_p);

/* Starts a record; forgets everything added before. origin may be NULL. */
void rt_record_builder_start(rt_record_builder_t *self, uint64_t seq, uint32_t xid,
                             rt_lsn_t commit_lsn, int64_t commit_ts, const char *origin);

/* Adds a relation descriptor (copied) and returns its index in this record. */
uint32_t rt_record_builder_relation(rt_record_builder_t *self, const rt_relation_t *rel);

/* Adds a change. values point at ncols rt_value_t (copied into the encoding). */
void rt_record_builder_insert(rt_record_builder_t *self, uint32_t rel, uint32_t ncols,
                              const rt_value_t *newvals);
void rt_record_builder_update(rt_record_builder_t *self, uint32_t rel, char old_kind, uint32_t nold,
                              const rt_value_t *oldvals, uint32_t nnew, const rt_value_t *newvals);
void rt_record_builder_delete(rt_record_builder_t *self, uint32_t rel, char old_kind, uint32_t nold,
                              const rt_value_t *oldvals);
void rt_record_builder_truncate(rt_record_builder_t *self, uint8_t flags, uint32_t nrels,
                                const uint32_t *rels);

/* Adds a sequence's last value. A record with sequences holds nothing else (no
 * relation, no other change) and is a whole transaction: finish it with FIRST|LAST. */
void rt_record_builder_sequence(rt_record_builder_t *self, const char *schema, const char *name,
                                int64_t last_value);

/* Adds a schema change, in its place among the rows of its transaction. */
void rt_record_builder_ddl(rt_record_builder_t *self, const rt_ddl_t *ddl);

/* Changes added since start. */
uint32_t rt_record_builder_nchanges(const rt_record_builder_t *self);
/* Encoded bytes of the changes so far (to decide when to cut a chunk). */
size_t rt_record_builder_size(const rt_record_builder_t *self);

/* Finishes the record with its flags and end_lsn. *data and *len are valid until the next
 * start or destroy; the builder owns them. Returns 0 or RT_ENOMEM, or RT_EINVAL if a call
 * since start was invalid (relation index out of range, row length not the relation's
 * ncols, bad old_kind, NUL inside a text value, a name over 4096 bytes, a frame over
 * RT_WIRE_MAX_FRAME); the builder then encodes nothing until the next start. */
int rt_record_builder_finish(rt_record_builder_t *self, uint8_t flags, rt_lsn_t end_lsn,
                             const void **data, size_t *len) RT_WUR;

/* ---- Record decoder. */
typedef struct rt_record_decoder_t rt_record_decoder_t;

rt_record_decoder_t *rt_record_decoder_new(void);
void rt_record_decoder_destroy(rt_record_decoder_t **self_p);

/* Decodes a whole frame. On success *rec is valid until the next decode or destroy,
 * and while frame is alive. RT_EPROTO for anything malformed: wrong type or version,
 * a field of the wrong type or size, an index out of range, trailing bytes. */
int rt_record_decode(rt_record_decoder_t *self, const void *frame, size_t len,
                     const rt_record_t **rec) RT_WUR;

/* Checks a frame's declared lengths and nesting before any msgpack unpacking
 * (msgpack-c has no size limits). 0, or RT_EPROTO. */
int rt_wire_prevalidate(const void *frame, size_t len) RT_WUR;

/* ---- Control messages: every frame is a msgpack array [type, version, fields...]. */
typedef enum {
    RT_MSG_UNKNOWN = 0,
    RT_MSG_REC,          /* an outbox record (rt_record_t) */
    RT_MSG_HELLO,        /* sub -> pub: name, applied_seq, lsn (its record's commit LSN),
                          * flags (RT_HELLO_LSN) */
    RT_MSG_WELCOME,      /* pub -> sub: source, pub_endpoint, first_seq, head_seq, paused,
                          * run_id, seq (the applied seq it registered) */
    RT_MSG_FETCH,        /* sub -> pub: from_seq, count, run_id (the run it follows) */
    RT_MSG_FETCHED,      /* pub -> sub: from_seq, last_seq (last sent, 0 if none), head_seq */
    RT_MSG_ACK,          /* sub -> pub: applied_seq, state */
    RT_MSG_HUGZ,         /* pub -> all over PUB: head_seq */
    RT_MSG_ERROR,        /* pub -> peer: code, text */
    RT_MSG_PING,         /* any -> pub */
    RT_MSG_PONG,         /* pub -> peer: source, head_seq */
    RT_MSG_STATUS,       /* rtctl -> pub */
    RT_MSG_STATUS_REPLY, /* pub -> rtctl: rt_status_t */
    RT_MSG_PAUSE,        /* rtctl -> pub: name */
    RT_MSG_RESUME,       /* rtctl -> pub: name */
    RT_MSG_OK,           /* pub -> rtctl: text */
    RT_MSG_FORGET,       /* rtctl -> pub: name, flags (RT_FORGET_FORCE) */
    RT_MSG_REPLAY,       /* rtctl -> pub: name, seq (from), last_seq (to), commit_ts (since),
                          * flags (RT_REPLAY_*); pub -> sub: the same, range resolved */
    RT_MSG_SYNC,         /* sub -> pub: name, seq (start seq it holds, 0 none), count (jobs),
                          * flags (RT_SYNC_*) */
    RT_MSG_SYNC_READY,   /* pub -> sub: sync_id, seq (start seq), lsn (consistent point),
                          * tables, text (snapshot name) */
    RT_MSG_SYNC_KEEP,    /* sub -> pub: name, sync_id, progress: the copy goes on */
    RT_MSG_SYNC_END,     /* sub -> pub: name, sync_id: the copy ended, drop the snapshot */
    RT_MSG_COPY,         /* sub -> pub: name, sync_id, table, count (credit), flags (RT_COPY_*) */
    RT_MSG_COPY_DATA,    /* pub -> sub: sync_id, table, data (COPY bytes, whole rows) */
    RT_MSG_COPY_DONE,    /* pub -> sub: sync_id, table, count (rows sent) */
    RT_MSG_RESYNC,       /* rtctl -> pub: name, text (tables, one per line; "" all);
                          * pub -> sub: the same, a resync to carry out */
    RT_MSG_SCHEMA,       /* sub -> pub: name, sync_id, ddl (the tables it lacks; no text) */
    RT_MSG_SCHEMA_READY, /* pub -> sub: sync_id, ddl (those tables and their partition
                          * ancestors, each root first, with their definitions) */
    RT_MSG_SKIP,         /* rtctl -> pub: name, seq: step over the DDL changes of record seq;
                          * pub -> sub: the same */
    RT_MSG_LIVE,         /* pub -> all (PUB): run_id, head_seq; the first frame of a live
                          * record, whose second frame is the REC */
    RT_MSG_STREAM,       /* pub -> all (PUB): run_id, head_seq (the last seq cut before it),
                          * xid, subxid, seq (block number, from 1), data (a REC of the
                          * block's changes): a block of a transaction still running */
    RT_MSG_STREAM_ABORT, /* pub -> all (PUB): run_id, xid, subxid (== xid: all of it) */
    RT_MSG_STREAM_COMMIT /* pub -> all (PUB): run_id, xid, count (blocks sent), first_seq
                          * (the seq of the committed transaction's first record) */
} rt_msg_type_t;

/* SYNC flags. */
#define RT_SYNC_RESET                                                                              \
    0x01u /* a resync: keep the records from the head on, not from the                             \
           * subscriber's acked seq */
#define RT_SYNC_TABLES                                                                             \
    0x02u /* a resync of chosen tables while the others stream: the subscriber's progress is       \
           * kept, and the records after the head are held back from trimming until its next       \
           * HELLO (it applies them to those tables after their copy) */
#define RT_SYNC_FLAGS 0x03u

/* COPY flags. */
#define RT_COPY_BINARY 0x01u /* COPY ... (FORMAT binary) */
#define RT_COPY_FLAGS 0x01u  /* every valid bit */

/* How far a subscriber's initial copy is (SYNC_KEEP, STATUS_REPLY); all 0 when none runs. */
typedef struct {
    uint64_t tables_done;  /* tables copied (by this attempt or an earlier one) */
    uint64_t tables_total; /* tables of the snapshot */
    uint64_t rows;         /* rows of the tables copied by this attempt */
    uint64_t bytes;        /* COPY bytes loaded by this attempt */
    uint64_t bytes_total;  /* estimate of the COPY bytes of this attempt (0: unknown) */
    uint64_t elapsed_ms;   /* since this attempt began copying */
} rt_copy_progress_t;

/* A column of a table offered for an initial copy (SYNC_READY). */
typedef struct {
    char *name;      /* column name */
    char *type;      /* format_type() on the source, e.g. "character varying(20)" */
    uint32_t typoid; /* type OID on the source (< 16384: a built-in type) */
} rt_sync_column_t;

/* A published table as of the snapshot, with the columns the copy sends, in order. A large
 * table may come as several entries, each a range of its pages (copied in parallel). */
typedef struct {
    char *schema, *table;
    char relkind;           /* 'r' table, 'p' partitioned table */
    uint64_t bytes;         /* its size on disk (partitions included), for scheduling */
    uint64_t first_page;    /* a part of a large table: its rows in pages [first_page, */
    uint64_t end_page;      /* end_page), end_page 0: to the end; both 0: the whole table */
    uint32_t ncols;         /* columns sent */
    rt_sync_column_t *cols; /* ncols columns */
} rt_sync_table_t;

/* A table's definition as of a copy's snapshot, for --create-tables: what pg_dump
 * --schema-only prints of it, before the rows (the table, its owned sequences, defaults,
 * its attachment as a partition) and after (keys, indexes, constraints, triggers). In
 * SCHEMA only the names are set, pre and post are "". */
typedef struct {
    char *schema, *table;
    char *pre, *post;
} rt_sync_ddl_t;

/* Most tables one SYNC_READY offers. */
#define RT_SYNC_MAX_TABLES 100000u
/* Most columns of a table (PostgreSQL's MaxHeapAttributeNumber). */
#define RT_SYNC_MAX_COLUMNS 1600u

/* REPLAY flags. */
#define RT_REPLAY_DRY_RUN 0x01u /* count what would be sent, send nothing */
#define RT_REPLAY_RESET 0x02u   /* move the subscriber's progress back to from - 1 first */
#define RT_REPLAY_SINCE 0x04u   /* from is the first record with commit_ts >= the given time */
#define RT_REPLAY_FLAGS 0x07u   /* every valid bit */

/* HELLO flags: lsn is the commit LSN of the record at the applied seq, which the replica
 * committed before the publisher stored it (protocol.md, "Live records and durability"). */
#define RT_HELLO_LSN 0x01u

/* FORGET flags. */
#define RT_FORGET_FORCE 0x01u /* even while the subscriber is connected */

/* Longest error text a subscriber reports in ACK (longer texts are cut). */
#define RT_ERROR_TEXT_MAX 255

/* Subscriber states as reported in ACK and STATUS_REPLY. */
typedef enum {
    RT_SUB_STREAMING = 0,
    RT_SUB_CATCHING_UP = 1,
    RT_SUB_PAUSED = 2,
    RT_SUB_ERROR = 3,
    RT_SUB_OFFLINE = 4,
    RT_SUB_COPYING = 5 /* taking its initial copy */
} rt_sub_state_t;
#define RT_SUB_LAST_STATE RT_SUB_COPYING

const char *rt_sub_state_name(int state);
/* The name of an rt_capture_state_t ("streaming", "disconnected", ...). */
const char *rt_capture_state_name(int64_t state);

/* How a publisher's sockets are protected, as reported in STATUS_REPLY. */
typedef enum {
    RT_SECURITY_LOOPBACK = 0, /* plaintext, every endpoint on this host */
    RT_SECURITY_CURVE = 1,    /* CURVE on every socket */
    RT_SECURITY_INSECURE = 2  /* plaintext on an endpoint other hosts reach (--insecure) */
} rt_security_t;

/* "loopback", "curve" or "insecure" ("?" for another value). */
const char *rt_security_name(int64_t security);

/* A decoded control message. Strings are NUL-terminated copies owned by the
 * message (freed by rt_msg_clear). Fields not used by a type are zero. */
typedef struct {
    int type;           /* rt_msg_type_t */
    uint8_t version;    /* encode: 0 the newest, else that version (for an older peer);
                         * decode: the frame's */
    char *name;         /* HELLO, PAUSE, RESUME: subscriber name */
    char *source;       /* WELCOME, PONG: source name */
    char *endpoint;     /* WELCOME: PUB endpoint to connect to */
    char *text;         /* ERROR, OK: message; ACK: last apply error ("" if none) */
    int64_t code;       /* ERROR: an RT_E* code */
    int64_t state;      /* ACK: rt_sub_state_t */
    uint64_t seq;       /* HELLO/ACK: applied; WELCOME: applied, as registered;
                         * FETCH/FETCHED/REPLAY: from_seq; STREAM: block number */
    uint64_t last_seq;  /* FETCHED: last sent; REPLAY: last seq of the range (0: head) */
    uint64_t first_seq; /* WELCOME: oldest record still in the outbox; STREAM_COMMIT: the
                         * seq of the transaction's first record */
    uint64_t head_seq;  /* WELCOME, FETCHED, HUGZ, PONG, LIVE: newest durable record;
                         * STREAM: the last seq cut before the block */
    uint64_t run_id;    /* WELCOME, FETCHED, HUGZ, LIVE: the publisher's run (0: a version
                         * without it); FETCH: the run the subscriber follows (0: any) */
    uint64_t count;     /* FETCH: records wanted; STREAM_COMMIT: blocks sent */
    bool paused;        /* WELCOME: the subscriber is paused (apply nothing until RESUME) */
    uint64_t conflicts; /* ACK: conflicts met since the subscriber started */
    int64_t commit_ts;  /* ACK: source commit time of the last applied record (PostgreSQL
                         * epoch µs, 0 if none); REPLAY: the --since time */
    int64_t applied_at; /* ACK: when that record was committed on the replica (same unit) */
    uint64_t flags;     /* REPLAY: RT_REPLAY_*; FORGET: RT_FORGET_*; COPY: RT_COPY_*;
                         * HELLO: RT_HELLO_* */
    uint64_t sync_id;   /* SYNC_*, COPY*: the publisher's id of the copy session */
    uint64_t table;     /* COPY*: index of the table in SYNC_READY's tables */
    uint64_t xid;       /* STREAM*: the source transaction */
    uint64_t subxid;    /* STREAM, STREAM_ABORT: its subtransaction (== xid: the top one) */
    rt_lsn_t lsn;       /* SYNC_READY: the snapshot's consistent point; HELLO: the commit
                         * LSN of the applied seq's record (with RT_HELLO_LSN) */
    void *data;         /* COPY_DATA, STREAM: datalen bytes (malloc'd) */
    size_t datalen;
    rt_sync_table_t *tables; /* SYNC_READY: ntables tables (malloc'd) */
    size_t ntables;
    rt_sync_ddl_t *ddl; /* SCHEMA, SCHEMA_READY: nddl tables (malloc'd) */
    size_t nddl;
    rt_copy_progress_t progress; /* SYNC_KEEP */
} rt_msg_t;

/* Frees ntables tables of a SYNC_READY and their strings (NULL-safe). */
void rt_sync_tables_free(rt_sync_table_t *tables, size_t ntables);
/* Frees n entries of a SCHEMA or SCHEMA_READY and their strings (NULL-safe). */
void rt_sync_ddl_free(rt_sync_ddl_t *ddl, size_t n);

/* Returns the type of a frame without decoding it fully (RT_MSG_UNKNOWN if not ours). */
int rt_msg_peek_type(const void *frame, size_t len);

/* The type tag of a message type ("HELLO", "PAUSE", ...), "UNKNOWN" for another value. */
const char *rt_msg_type_name(int type);

/* Decodes a control message (not REC, not STATUS_REPLY). RT_EPROTO if malformed. */
int rt_msg_decode(const void *frame, size_t len, rt_msg_t *msg) RT_WUR;
void rt_msg_clear(rt_msg_t *msg);

/* Encodes a control message into a malloc'd buffer the caller frees. */
int rt_msg_encode(const rt_msg_t *msg, void **frame, size_t *len) RT_WUR;

/* Status of a publisher and its subscribers, for rtctl status. */
typedef struct {
    char name[128];      /* subscriber name */
    uint64_t acked_seq;  /* last seq it acknowledged */
    int64_t state;       /* rt_sub_state_t */
    int64_t seen_ms_ago; /* ms since its last message, -1 never */
    uint64_t conflicts;  /* conflicts it reported (since it started) */
    int64_t commit_ts;   /* source commit time of its last applied record (PG epoch µs, 0 none) */
    int64_t applied_at;  /* when it applied that record on the replica (PG epoch µs, 0 none) */
    uint64_t lag_bytes;  /* outbox bytes of the records it has not acknowledged */
    int64_t lag_ms;      /* source commit of its oldest unapplied record to now, or of its
                          * last applied record to when it applied it; -1 unknown */
    char error[RT_ERROR_TEXT_MAX + 1]; /* its last apply error, "" if none */
    rt_copy_progress_t copy;           /* its initial copy while it is copying */
} rt_status_sub_t;

/* The publisher's capture, as reported in STATUS_REPLY. */
typedef enum {
    RT_CAPTURE_STREAMING = 0,    /* connected to the source and reading */
    RT_CAPTURE_DISCONNECTED = 1, /* not connected (reconnecting) */
    RT_CAPTURE_BLOCKED = 2,      /* the outbox is full: reading paused */
    RT_CAPTURE_NONE = 3          /* no capture (a publisher serving an outbox only) */
} rt_capture_state_t;

typedef struct {
    char source[128];       /* source name */
    char slot[128];         /* replication slot */
    uint64_t first_seq;     /* oldest record kept */
    uint64_t head_seq;      /* newest durable record */
    uint64_t records;       /* records in the outbox */
    uint64_t outbox_bytes;  /* bytes used by the outbox */
    rt_lsn_t received_lsn;  /* newest WAL position received from the source */
    rt_lsn_t confirmed_lsn; /* flush LSN confirmed to the source */
    uint64_t captured_txns; /* transactions captured since start */
    uint64_t captured_rows; /* row changes captured since start */
    uint32_t nsubs;         /* subscribers */
    rt_status_sub_t *subs;  /* nsubs entries, malloc'd */
    int64_t capture_state;  /* rt_capture_state_t */
    int64_t oldest_ts;      /* source commit time of the oldest record kept (PG epoch µs, 0) */
    int64_t head_ts;        /* source commit time of the head record (PG epoch µs, 0) */
    int64_t now_ts;         /* the publisher's clock when it answered (PG epoch µs) */
    int64_t security;       /* rt_security_t: how its sockets are protected */
    /* The slot as the source sees it, measured every few seconds on a connection of its
     * own (-1: unknown: not measured yet, the source unreachable, or an older publisher). */
    int64_t retained_wal_bytes; /* WAL the slot keeps on the source: current LSN - restart_lsn */
    int64_t source_lag_bytes;   /* current LSN - the slot's confirmed_flush_lsn */
    int64_t source_lag_ms;      /* flush_lag of the publisher's WAL sender (0: caught up) */
    int64_t outbox_limit_bytes; /* --max-outbox-mb in bytes, 0: none (-1: older publisher) */
    /* A relay's: the publisher (or relay) it follows, "" for a publisher; then capture_state
     * and captured_* are about taking records from it. */
    char upstream[256];     /* its ROUTER endpoint */
    uint64_t upstream_head; /* its newest seq, as last heard (0: not yet) */
} rt_status_t;

/* Encodes STATUS_REPLY version 3 into a malloc'd buffer the caller frees. RT_EINVAL when a
 * field is out of its range (a name filling its buffer, a state, a figure below -1). */
int rt_status_encode(const rt_status_t *st, void **frame, size_t *len) RT_WUR;
/* Fills *st; st->subs is malloc'd, freed by rt_status_clear. Versions 2 (without the
 * upstream fields: "" and 0) and 1 (an older publisher, without the slot figures and the
 * outbox limit either: those four -1) decode too. RT_EPROTO if malformed, RT_ENOMEM. */
int rt_status_decode(const void *frame, size_t len, rt_status_t *st) RT_WUR;
void rt_status_clear(rt_status_t *st);

#endif
