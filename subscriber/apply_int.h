/* subscriber/apply_int.h - what the parts of the applier share: its state, and the
 * functions one part offers the others (apply.c, apply_session.c, apply_pipeline.c,
 * apply_copy.c, conflict.c). Other modules use apply.h. Names shared only among these begin with
 * rt__.
 */
#ifndef RT_APPLY_INT_H
#define RT_APPLY_INT_H

#include <czmq.h>
#include <libpq-fe.h>

#include "apply.h"

/* Longest origin name PostgreSQL accepts (MAX_RONAME_LEN). */
#define RT_APPLY_MAX_ORIGIN 512
/* Poll step while waiting on the replica socket, to notice a stop request. */
#define RT_APPLY_WAIT_STEP_MS 100
/* Shape keys (rt_sqlgen_shape_key: 34 characters). */
#define RT_APPLY_KEY_MAX 64

/* A record that committed in the segment of its changes met an UPDATE or DELETE that
 * did not touch one row: it is applied again, its row counts read before its commit
 * (internal to the applier: never returned by rt_apply_*). */
#define RT__ERECHECK (-100)
/* The replica failed a statement of rt's to break a deadlock with a local transaction
 * (SQLSTATE 40P01) or on a serialization failure (40001): the work rolled back is applied
 * again (internal to the applier: rt_apply_* returns RT_EDB when it cannot be). */
#define RT__ETRANSIENT (-101)

/* What a queued pipeline command was, to interpret its result. */
typedef enum {
    RT__OP_BEGIN,
    RT__OP_PREPARE,
    RT__OP_EXEC,
    RT__OP_MISC,
    RT__OP_COMMIT,
    RT__OP_ROLLBACK,
    RT__OP_TEXT,     /* its first value goes to self->text ("" when NULL or no row) */
    RT__OP_SEQUENCE, /* what moving a sequence did: rt__sequence_result */
    RT__OP_DDL       /* a schema change (apply_ddl.c) */
} rt__op_kind_t;

/* A queued pipeline command. */
typedef struct rt__op_t rt__op_t;
/* The INSERT shape key of a relation of the record being applied. */
typedef struct rt__relkey_t rt__relkey_t;

/* A conflict being resolved or the one that stopped applying. */
typedef struct {
    uint64_t seq;       /* record */
    uint32_t change;    /* index of the change in it */
    char relation[256]; /* "schema"."table" */
    char op[12];        /* INSERT, UPDATE, DELETE */
    char kind[24];      /* insert_exists, update_missing, update_exists, ... */
    char detail[512];   /* what was found, one line */
    bool versions;      /* the versions below were compared (keep_local, last_write_wins) */
    char local_node[128], remote_node[128]; /* who wrote each version ("" unknown) */
    int64_t local_ts, remote_ts; /* commit times, PostgreSQL epoch µs (local: 0 unknown) */
    bool local_known;
} rt__conflict_t;

/* A version read (apply_versioned.c): the row or tombstone a change meets. */
typedef struct {
    bool present;   /* there is one */
    bool known;     /* its commit time is known */
    bool own;       /* written by this source (its origin) */
    int64_t ts;     /* commit time, PostgreSQL epoch µs */
    char node[128]; /* the node whose write it is ("" unknown) */
} rt__vread_t;

/* The applier (apply.h): the replica session and its progress, the open transaction,
 * the pipeline queue and statement cache, the open COPY and the conflict being handled. */
/* A table of rt.sync_tables. Ready (copied): changes to it that committed before lsn are
 * in the copy already. Held (a resync of chosen tables copies it): none of its changes
 * apply. A ready table copied by a resync of chosen tables takes the records after seq
 * from that the apply passed while it was held: a replay for it. */
typedef struct {
    char *schema, *table;
    rt_lsn_t lsn;
    bool held;
    bool replay; /* it has a replay, after from */
    uint64_t from;
} rt__skip_t;

struct rt_apply_t {
    char *dsn;                            /* replica connection string */
    volatile sig_atomic_t *stop;          /* stop request flag */
    PGconn *conn;                         /* NULL when not connected */
    char *source;                         /* source name of the session's origin */
    char origin[RT_APPLY_MAX_ORIGIN + 1]; /* "rt_<source>" */
    char target[256];                     /* "db@host:port" */
    zhashx_t *cache;                      /* shape key -> s_cached_t */
    uint32_t next_stmt;                   /* number of the next statement name */

    uint64_t applied_seq;     /* last committed LAST seq */
    uint64_t position;        /* last record applied in the open transaction */
    bool in_txn;              /* a replica transaction is open */
    bool transient;           /* the last RT_EDB returned was RT__ETRANSIENT (rt_apply_transient) */
    bool side;                /* a side session (rt_apply_set_side): origin rt_<source>#stream */
    bool guarded;             /* lock_timeout is set for a side session's sake */
    bool mid_txn;             /* the last record applied did not end its source transaction */
    rt_lsn_t txn_commit_lsn;  /* commit LSN of that source transaction (its FIRST record's) */
    int64_t txn_start_ms;     /* when the open transaction began */
    uint32_t group_txns;      /* source transactions in the open transaction */
    uint32_t group_seqrecs;   /* records of sequences in it */
    uint32_t group_seq_moved; /* sequences they moved */
    size_t group_bytes;       /* record bytes in the open transaction */
    uint64_t group_changes;   /* changes in the open transaction */
    uint64_t applied_txns;    /* source transactions committed since start */
    uint64_t applied_rows;    /* changes committed since start */
    uint64_t group_seq;       /* seq of the last LAST record in the open transaction */
    int64_t group_ts;         /* its commit time (PostgreSQL epoch µs) */
    rt_lsn_t group_lsn;       /* the commit LSN that record carries */
    bool group_mark;          /* its commit records (group_seq, group_lsn) in rt.progress */
    bool one_trip;            /* the record being applied commits in its own pipeline segment */
    uint64_t durable_seq;     /* every commit up to this seq is in the replica's WAL on disk */
    uint64_t mark_seq;        /* what rt.progress says (0: nothing) */
    rt_lsn_t mark_lsn;

    rt__op_t *ops; /* commands of the current segment */
    size_t nops, ops_cap;
    const char **params; /* parameter pointers of one statement */
    size_t params_cap;
    const rt_relation_t **trels; /* relations of one TRUNCATE */
    size_t trels_cap;
    rt__relkey_t *relkeys; /* per relation index of the current record */
    size_t relkeys_cap;

    bool copying;                    /* a COPY FROM STDIN is open (out of pipeline mode) */
    char copy_key[RT_APPLY_KEY_MAX]; /* INSERT shape key of the relation it writes */
    char copy_table[256];            /* "schema"."table", for messages */
    uint64_t copy_first;             /* seq of its first row */
    uint64_t copy_last;              /* seq of its last row */
    uint64_t copy_rows;              /* rows written to it */
    char *copy_buf;                  /* encoded rows not yet handed to libpq */
    size_t copy_len, copy_cap;
    char run_key[RT_APPLY_KEY_MAX]; /* the INSERTs just before were into this relation */
    uint32_t run_rows;              /* how many (applied with INSERT) */
    uint64_t nocopy_until;          /* records up to this seq are applied without COPY */

    int policy;           /* rt_conflict_policy_t */
    char node[128];       /* this node's name: writes made on the replica are its */
    bool versioned_ready; /* the session is set up for keep_local / last_write_wins */
    rt__vread_t *vreads;  /* per change of the record: [2i] its row, [2i+1] tombstone */
    size_t vreads_cap;
    zhashx_t *vkeys;          /* keys the open transaction wrote (versioned policies) */
    zhashx_t *tombs;          /* "schema"."table" -> its tombstone table ("": none) */
    bool vrace;               /* the last versioned record's writes met a concurrent write */
    char text[256];           /* the value an RT__OP_TEXT command returned */
    uint64_t sequences_moved; /* sequences moved forward (committed) since start */
    zhashx_t *seq_warned;     /* sequences already warned about (apply_sequence.c) */
    bool ddl_skip;            /* --ddl skip */
    uint64_t ddl_skip_seq;    /* rtctl skip: the record whose DDL is left out (0: none) */
    uint64_t ddl_skipped;     /* last seq whose DDL --ddl skip left out (logged once) */
    char search_path[1024];   /* the session's own, restored after each DDL */
    uint64_t ddl_applied;     /* DDL changes committed since start */
    uint32_t group_ddl;       /* DDL changes in the open transaction */
    int tombstone_hours;      /* tombstones older than this are purged */
    int64_t purged_ms;        /* when they were last purged (monotonic ms) */
    uint64_t remote_until;    /* records up to this seq: apply_remote whatever the policy */
    uint64_t conflicts;       /* counted conflicts (committed or stopping) */
    uint64_t group_conflicts; /* conflicts resolved in the open transaction */
    rt__conflict_t conflict;  /* the last conflict detected */
    bool conflict_set;        /* conflict describes the failure being handled */
    uint64_t stop_seq;        /* the stopping conflict last recorded: seq, change, kind */
    uint32_t stop_change;
    char stop_kind[24];
    int64_t probe_rows;                     /* probe: rows of the last statement, -1 on 23505 */
    char probe_detail[256];                 /* probe: the 23505 detail */
    char last_error[RT_ERROR_TEXT_MAX + 1]; /* the last failure, one line */
    int64_t last_commit_ts;                 /* source commit time of the last committed group */
    int64_t last_applied_at;                /* when it committed */

    rt__skip_t *skips;     /* tables an initial copy holds up to a consistent point */
    size_t nskips;         /* 0 once every record applied is past them all */
    zhashx_t *skip_index;  /* "<schema length>:schema.table" -> its entry in skips */
    rt_lsn_t skip_max;     /* the latest of their points */
    rt_lsn_t skip_min;     /* the earliest: a DDL committed before it is in every copy */
    uint64_t skip_past;    /* the first record of the open group past skip_max: once it is
                            * committed the tables are forgotten (0: none; a rollback
                            * clears it, the records are filtered again) */
    size_t nheld;          /* tables held while a resync copies them */
    uint64_t replay_to;    /* records up to this seq (the origin's progress) are a replay for
                            * the tables past whose from they are, and nothing else applies
                            * (0: no replay) */
    uint64_t replay_from;  /* the earliest from: where the apply resumes */
    rt_record_t filtered;  /* the record without the changes the copy holds */
    rt_change_t *fchanges; /* filtered's changes */
    size_t fchanges_cap;
    uint32_t *ftrunc; /* relation indexes of its TRUNCATEs */
    size_t ftrunc_cap;
    bool *fheld; /* per relation of the record: its changes are in the copy */
    size_t fheld_cap;
};

/* ---- apply_session.c: the session's origin statements. */

/* pg_replication_origin_xact_setup($1 seq as an LSN, $2 commit time in µs); the marked
 * form also writes rt.progress ($3 source, $4 seq, $5 commit LSN). */
extern const char rt__origin_setup_sql[];
extern const char rt__origin_setup_marked_sql[];

/* ---- apply.c: records, commit and rollback. */

/* Handles a failed segment as every apply call does: drops a broken connection, else
 * rolls back; returns err (RT_EIO when the connection was dropped). */
int rt__apply_failed(rt_apply_t *self, int err) RT_WUR;

/* err as the rt_apply_* calls return it (RT__ETRANSIENT becomes RT_EDB, noted for
 * rt_apply_transient). */
int rt__apply_outward(rt_apply_t *self, int err) RT_WUR;

/* Forgets the open transaction: position back to applied_seq. */
void rt__apply_reset_txn(rt_apply_t *self);

/* True once stop is requested. */
bool rt__apply_stopping(const rt_apply_t *self);

/* Keeps a failure the applier applies again (RT__ETRANSIENT) as the last error, logged
 * as information: "...; applying it again". */
void rt__apply_transient(rt_apply_t *self, const char *fmt, ...) RT_PRINTF(2, 3);
/* Logs an apply failure and keeps it as the last error (reported in ACK). */
void rt__apply_error(rt_apply_t *self, const char *fmt, ...) RT_PRINTF(2, 3);

/* Drops the connection without any further command (the server rolls back). */
void rt__apply_drop(rt_apply_t *self);

/* ---- apply_skip.c: changes an initial copy holds already. */

/* Reads the replica's rt.sync_tables for self->source (none if it does not exist).
 * RT_OK, RT_EDB (logged, kept as the last error) or RT_ENOMEM. */
int rt__skip_load(rt_apply_t *self) RT_WUR;

/* Forgets the tables read. */
void rt__skip_free(rt_apply_t *self);

/* rec, or a copy of it in self->filtered without the changes whose table was copied
 * under a snapshot that holds them (the record's commit LSN is before the table's
 * consistent point), of held tables, and, in a replay, of the tables it is not a replay
 * for; valid until the next call. Once a record past every table's point is committed
 * and nothing is held or replayed, the tables are forgotten (nothing more is ever
 * skipped). NULL if out of memory. */
const rt_record_t *rt__skip_filter(rt_apply_t *self, const rt_record_t *rec);

/* The statement that records, with a commit in a replay, how far the replay went ($1
 * source, $2 the group's last seq, $3 replay_to: there the replays are over). */
extern const char *const rt__skip_replayed_sql;

/* ---- apply_ddl.c: schema changes. */

/* Runs DDL change idx of rec (after everything queued before it), or leaves it out under
 * --ddl skip. A DDL the replica must not run (flags) or that fails stops the apply with a
 * message naming the command and the seq. */
int rt__ddl_apply(rt_apply_t *self, const rt_record_t *rec, uint32_t idx) RT_WUR;

/* command without its CONCURRENTLY when it is CREATE [UNIQUE] INDEX CONCURRENTLY or DROP
 * INDEX CONCURRENTLY (malloc'd), else NULL (also when out of memory). */
char *rt__ddl_without_concurrently(const char *command);

/* The message for a DDL change that failed on the replica. */
void rt__ddl_failure(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, const char *state,
                     const char *msg);

/* ---- apply_sequence.c: records of sequences, moved forward only. */

/* Queues and runs the commands that move each sequence of rec forward (in the open
 * replica transaction). 0, or the first failure as rt__pipeline_run returns it. */
int rt__sequence_apply(rt_apply_t *self, const rt_record_t *rec) RT_WUR;

/* What moving sequence idx of rec did ("moved", "ahead", "missing", "denied",
 * "cycle"): counted, and what stops it from being replicated warned about once. */
void rt__sequence_result(rt_apply_t *self, const rt_record_t *rec, uint32_t idx,
                         const char *result);

/* ---- apply_pipeline.c: the pipeline queue and the prepared-statement cache. Commands
 * are queued on self->conn (in pipeline mode) and noted in self->ops; sending fails
 * with RT_EIO, RT_ENOMEM or, for a change that does not fit its relation, RT_EPROTO. */

/* A new statement cache: shape key -> prepared statement, freeing its entries. NULL if
 * out of memory. */
zhashx_t *rt__pipeline_cache_new(void);

/* Queues sql with n text parameters; kind says how to read its result. */
int rt__pipeline_send(rt_apply_t *self, rt__op_kind_t kind, const char *sql, int n,
                      const char *const *params) RT_WUR;

/* rt__pipeline_send for one of the applier's fixed statements (the text is copied):
 * prepared once per connection, then only bound and executed. */
int rt__pipeline_send_fixed(rt_apply_t *self, rt__op_kind_t kind, const char *sql, int n,
                            const char *const *params) RT_WUR;

/* rt__pipeline_send for a command about change idx of the record. */
int rt__pipeline_send_for(rt_apply_t *self, rt__op_kind_t kind, uint32_t idx, const char *sql,
                          int n, const char *const *params) RT_WUR;

/* Queues change idx of rec as a prepared statement (a TRUNCATE as plain SQL). */
int rt__pipeline_send_change(rt_apply_t *self, const rt_record_t *rec, uint32_t idx) RT_WUR;

/* Queues change ch (change idx of rec, or a statement standing in for it) as a
 * prepared statement; probe: its row count or duplicate key is read as an answer
 * (self->probe_rows, self->probe_detail). */
int rt__pipeline_send_stmt(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch,
                           uint32_t idx, bool probe) RT_WUR;

/* Queues version statement what ('R', 'S', 'W': rt_sqlgen_version; tomb: the key's
 * tombstone table) for change idx of rec; a read's result goes to slot
 * (rt__versioned_store). */
int rt__pipeline_send_version(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, char what,
                              const char *tomb, int32_t slot) RT_WUR;

/* Sends what libpq buffered, reading input meanwhile so the server never blocks
 * on a full socket while we do. 0, RT_EIO or RT_EAGAIN. */
int rt__pipeline_flush(rt_apply_t *self) RT_WUR;

/* Returns the next result, waiting for it while watching the stop flag. Sets *err
 * to RT_EAGAIN on stop or RT_EIO if the connection failed; NULL results are
 * otherwise the end of one command's results. */
PGresult *rt__pipeline_next_result(rt_apply_t *self, int *err);

/* Ends the segment with a Sync, sends it and reads all results, rec being the record
 * the changes are of (NULL: none). Returns 0 or the first failure (logged, or noted in
 * self->conflict for RT_ECONFLICT); on RT_EIO/RT_EAGAIN the connection is unusable.
 * The queue is empty after. */
int rt__pipeline_sync(rt_apply_t *self, const rt_record_t *rec) RT_WUR;

/* Sends what is queued with a Sync and reads the results (rt__pipeline_sync after a
 * flush). */
int rt__pipeline_run(rt_apply_t *self, const rt_record_t *rec) RT_WUR;

/* ---- apply_copy.c: the COPY path for runs of INSERTs (self->copying while one is open,
 * out of pipeline mode). */

/* The INSERT shape key of relation idx of rec, computed once per record; NULL if the
 * descriptor is unusable. Valid until the next record. */
const char *rt__copy_rel_key(rt_apply_t *self, const rt_record_t *rec, uint32_t idx);

/* Whether INSERT i of rec (relation key) starts a COPY: the run of INSERTs into its
 * relation it belongs to - those applied just before it and those that follow it in
 * this record - has at least S_COPY_MIN_ROWS rows. */
bool rt__copy_wanted(const rt_apply_t *self, const rt_record_t *rec, uint32_t i, const char *key);

/* Notes an INSERT applied with a prepared statement (key NULL: another change). */
void rt__copy_run_note(rt_apply_t *self, const char *key);

/* Opens a COPY into relation idx of rec (key: its INSERT shape key); nothing may be
 * queued in the pipeline. Returns 0 or an error as rt_apply_record. */
int rt__copy_start(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, const char *key) RT_WUR;

/* Appends INSERT ch of rec to the open COPY. Returns 0; RT_EPROTO or RT_ENOMEM, the
 * COPY still open; or RT_EIO, RT_EAGAIN or the failure the server reported (logged). */
int rt__copy_row(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch) RT_WUR;

/* Sends the rest of the rows, ends the COPY and checks its result; pipeline mode
 * again. Returns 0 or an error as rt_apply_record. */
int rt__copy_end(rt_apply_t *self) RT_WUR;

/* Abandons the open COPY (the transaction is rolled back next). 0 when the session is
 * usable again, else RT_EIO or RT_EAGAIN. */
int rt__copy_abort(rt_apply_t *self) RT_WUR;

/* ---- apply_versioned.c: keep_local and last_write_wins. */

/* Whether policy decides by versions (keep_local, last_write_wins). */
bool rt__versioned_policy(int policy);

/* Sets the session up for policy at connect: checks track_commit_timestamp and, for
 * last_write_wins, creates the tombstone tables and triggers. 0 or RT_EDB (logged). */
int rt__versioned_setup(rt_apply_t *self, int policy) RT_WUR;

/* Applies rec (after SAVEPOINT rt_record) under policy, each change decided by the
 * versions it meets. Returns 0, an error as rt_apply_record, or RT_ECONFLICT with
 * self->conflict set: a change that stops, or (self->vrace) a row a concurrent local
 * transaction wrote after it was read, when reading again resolves it. */
int rt__versioned_record(rt_apply_t *self, const rt_record_t *rec, int policy) RT_WUR;

/* Stores a version read's result in slot. */
void rt__versioned_store(rt_apply_t *self, int32_t slot, const PGresult *res);

/* Purges the tombstones older than tombstone_hours when the last purge is an hour old
 * (or force), in a transaction of its own (no transaction may be open). A failure is
 * logged as a warning: the tombstones stay until the next purge. */
void rt__versioned_purge(rt_apply_t *self, bool force);

/* Forgets the keys the open transaction wrote, at its end (committed or rolled back:
 * then the tombstone tables it made are forgotten too). */
void rt__versioned_txn_end(rt_apply_t *self, bool committed);

/* Frees the versioned state. */
void rt__versioned_free(rt_apply_t *self);

/* ---- conflict.c: conflicts described, recorded in rt.conflicts and resolved. */

/* The statements that create the schema rt and the table rt.conflicts if missing
 * (run when the session is set up). */
extern const char *const rt__conflicts_ddl;

/* "INSERT", "UPDATE", "DELETE" or "TRUNCATE" for a change's op letter. */
const char *rt__conflict_op_name(char op);

/* Describes a conflict of change idx of rec (op: the statement that met it) in
 * self->conflict, and sets self->conflict_set. */
void rt__conflict_note(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, char op,
                       const char *kind, const char *fmt, ...) RT_PRINTF(6, 7);

/* Writes the identity change ch of rec is matched by, "(k1, k2)=(v1, v2)" (values cut at
 * 40 bytes), into buf; "" when there is no key or no image. */
void rt__conflict_key(const rt_record_t *rec, const rt_change_t *ch, char *buf, size_t size);

/* The policy for record seq: apply_remote up to remote_until, else the subscriber's. */
int rt__conflict_policy_for(const rt_apply_t *self, uint64_t seq);

/* Whether change ch has a whole new row (no unchanged TOASTed value left out), so
 * that it can be inserted. */
bool rt__change_complete(const rt_change_t *ch);

/* A conflict (self->conflict) resolved inside the open transaction: logged, recorded in
 * rt.conflicts there (queued) with resolution, counted at commit. */
int rt__conflict_resolved(rt_apply_t *self, const char *resolution) RT_WUR;

/* Applies rec change by change, resolving conflicts the apply_remote way (after ROLLBACK
 * TO SAVEPOINT rt_record). Returns 0, an error as rt_apply_record, or RT_ECONFLICT with
 * self->conflict set when one cannot be resolved. */
int rt__conflict_resolve_record(rt_apply_t *self, const rt_record_t *rec) RT_WUR;

/* Records the conflict that stopped applying, in a transaction of its own (not in
 * any open transaction: it was rolled back), once per seq, change and kind. Counts it
 * and logs it as the last error; may drop the connection if that transaction fails. */
void rt__conflict_record_stop(rt_apply_t *self);

#endif
