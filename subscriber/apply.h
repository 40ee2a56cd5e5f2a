/* subscriber/apply.h - applies outbox records to the replica exactly once (libpq). */
#ifndef RT_APPLY_H
#define RT_APPLY_H

#include <signal.h>

#include "conflict.h"
#include "rt.h"
#include "wire.h"

/* A replica connection with its replication origin rt_<source>, the prepared
 * statement cache and the open replica transaction (if any).
 *
 * Positions: applied_seq is the seq of the last LAST record committed (the
 * origin's progress); the open transaction may hold records after it, up to
 * position. The next record to apply is always position + 1. */
typedef struct rt_apply_t rt_apply_t;

/* Group limits: a replica transaction takes more source transactions only
 * while it holds fewer than these. */
#define RT_APPLY_GROUP_TXNS 1000
#define RT_APPLY_GROUP_BYTES (8u * 1024 * 1024)

/* Creates an applier for the replica at dsn (a libpq connection string); does not
 * connect. stop is polled while waiting on the replica: once it is non-zero, waits
 * end and calls return RT_EAGAIN. Returns NULL if out of memory. */
rt_apply_t *rt_apply_new(const char *dsn, volatile sig_atomic_t *stop);

/* Rolls back any open transaction, closes the connection, frees self; clears *self_p. */
void rt_apply_destroy(rt_apply_t **self_p);

/* Connects (closing any previous connection), sets up the session
 * (session_replication_role = replica, application_name, the origin rt_<source>
 * created if missing and bound to this session) and reads the origin's progress
 * into *applied_seq (0 if none). Errors are logged. Returns 0, RT_EDB (could not
 * connect or set up; retry later), RT_EINVAL (unusable source name), RT_EAGAIN
 * (stop requested) or RT_ENOMEM. */
int rt_apply_connect(rt_apply_t *self, const char *source, uint64_t *applied_seq) RT_WUR;

/* Rolls back any open transaction and closes the connection. */
void rt_apply_close(rt_apply_t *self);

/* True while connected and set up. */
bool rt_apply_connected(const rt_apply_t *self);

/* Seq of the last committed record (the origin's progress). */
uint64_t rt_apply_applied_seq(const rt_apply_t *self);

/* Seq of the last committed record whose commit is on the replica's disk: the apply
 * session commits with synchronous_commit = off (as PostgreSQL's apply workers do), so a
 * commit is visible at once and durable once rt_apply_flush saw it flushed; after a crash
 * of the replica's server the origin's progress comes back at most to here. */
uint64_t rt_apply_durable_seq(const rt_apply_t *self);

/* Has the replica flush its WAL up to the last commit, when that is newer than
 * rt_apply_durable_seq says and no transaction is open (else does nothing): one round
 * trip. RT_OK, or the failure (the connection dropped when unusable). */
int rt_apply_flush(rt_apply_t *self) RT_WUR;

/* Seq of the next record to apply: position + 1. */
uint64_t rt_apply_next_seq(const rt_apply_t *self);

/* True while a replica transaction is open. */
bool rt_apply_in_txn(const rt_apply_t *self);

/* True when a transaction is open and its last record ended a source transaction:
 * it may be committed now (rt_apply_commit) or take the next source transaction. */
bool rt_apply_commit_ready(const rt_apply_t *self);

/* True when the open group reached RT_APPLY_GROUP_TXNS or RT_APPLY_GROUP_BYTES. */
bool rt_apply_group_full(const rt_apply_t *self);

/* Milliseconds since the open transaction began (0 if none). */
int64_t rt_apply_txn_age_ms(const rt_apply_t *self);

/* "db@host:port" of the replica, for log lines (valid while connected). */
const char *rt_apply_target(const rt_apply_t *self);

/* Applies rec (whose seq must be rt_apply_next_seq()) inside the open replica
 * transaction, beginning one if none is open; the transaction stays open (commit
 * with rt_apply_commit once rt_apply_commit_ready). bytes is the record's encoded
 * size, for the group limit. rec and the frame it points into are only used during
 * the call. On any failure the transaction is rolled back (position returns to
 * applied_seq) and the cause logged with the seq. Returns 0, or:
 *  RT_ECONFLICT  an UPDATE/DELETE did not match exactly one row, or a duplicate key;
 *  RT_ENOTFOUND  a table or column is missing on the replica;
 *  RT_EDB        any other PostgreSQL error (the connection is still usable);
 *  RT_EPROTO     the record is inconsistent (flags, row images, parameters);
 *  RT_EIO        the connection was lost (rt_apply_connected() is then false);
 *  RT_EAGAIN     stop was requested (the connection was closed);
 *  RT_ENOMEM. */
int rt_apply_record(rt_apply_t *self, const rt_record_t *rec, size_t bytes) RT_WUR;

/* Applies rec as rt_apply_record, then commits as rt_apply_commit when the transaction
 * may commit (rec ends a source transaction), first marking the group in rt.progress
 * when mark (rt_apply_mark_group). A few row changes that are a whole source
 * transaction on their own commit in the pipeline segment of their changes: one round
 * trip to the replica. Returns as rt_apply_record. */
int rt_apply_record_commit(rt_apply_t *self, const rt_record_t *rec, size_t bytes,
                           bool mark) RT_WUR;

/* Commits the open transaction, recording the seq and commit time of its last
 * source transaction as the origin's progress; then applied_seq = that seq.
 * Returns 0 or an error as rt_apply_record (the transaction is then rolled back). */
int rt_apply_commit(rt_apply_t *self) RT_WUR;

/* Rolls back the open transaction, if any (position returns to applied_seq). */
void rt_apply_rollback(rt_apply_t *self);

/* ---- Conflicts (an INSERT of a key that exists, an UPDATE or DELETE of a missing row).
 *
 * Every conflict is counted and recorded in the replica table rt.conflicts (created
 * at connect if missing): in the replica transaction that resolves it, or in a
 * transaction of its own when it stops applying. The policies are in conflict.h. */

/* Sets the policy (default RT_CONFLICT_ERROR). */
void rt_apply_set_policy(rt_apply_t *self, int policy);

/* This node's name: under keep_local and last_write_wins, a row written on the replica
 * itself is this node's version (in a mesh, the name the node's own publisher has). */
void rt_apply_set_node(rt_apply_t *self, const char *node);

/* Under last_write_wins, tombstones older than hours are purged (at connect, then
 * hourly after a commit). Default 168. */
void rt_apply_set_tombstone_hours(rt_apply_t *self, int hours);

/* Schema changes (DDL changes of records): skip leaves them out, else (the default) each
 * runs in the replica transaction in its place among the rows. */
void rt_apply_set_ddl(rt_apply_t *self, bool skip);

/* rtctl skip: the DDL changes of record seq are left out (logged, and recorded in
 * rt.conflicts in its transaction); its rows apply. One seq at a time. */
void rt_apply_skip_ddl(rt_apply_t *self, uint64_t seq);

/* Records up to seq are applied with RT_CONFLICT_APPLY_REMOTE whatever the policy
 * (a replay with reset re-applies records the replica may already hold). 0: none. */
void rt_apply_set_remote_until(rt_apply_t *self, uint64_t seq);

/* Conflicts met since creation: those resolved in committed transactions and those
 * that stopped applying (each stopping conflict once, however often it is retried). */
uint64_t rt_apply_conflicts(const rt_apply_t *self);

/* The last apply failure, one line ("" when the last commit succeeded after it). */
const char *rt_apply_last_error(const rt_apply_t *self);

/* Whether the last call that failed with RT_EDB failed on a deadlock or a serialization
 * failure of the replica (SQLSTATE 40P01, 40001) that it could not apply again by
 * itself (the rollback took records applied before): applying again from the last
 * commit at once is likely to succeed. */
bool rt_apply_transient(const rt_apply_t *self);

/* Source commit time (PostgreSQL epoch µs) of the last committed source transaction,
 * and when it was committed on the replica (same unit); 0 before the first commit. */
int64_t rt_apply_last_commit_ts(const rt_apply_t *self);
int64_t rt_apply_last_applied_at(const rt_apply_t *self);

/* The open group holds records the publisher had not stored when they were applied: its
 * commit records its last record's seq and commit LSN in rt.progress, so that a run of the
 * publisher that numbered them anew finds where the replica stands (protocol.md, "Live
 * records and durability"). */
void rt_apply_mark_group(rt_apply_t *self);
/* True when the replica's progress is such a record: *lsn gets its commit LSN (never
 * during a replay for resynced tables, whose position is a stored seq). */
bool rt_apply_mark(const rt_apply_t *self, rt_lsn_t *lsn);

/* Moves the replication origin's progress to seq (back or forward), rolling back any
 * open transaction first: ends the origin session, pg_replication_origin_advance,
 * binds the origin again. Then applied_seq = seq and the next record is seq + 1.
 * Returns 0, RT_EDB (logged; the connection is dropped), RT_EAGAIN or RT_EIO. */
int rt_apply_reset(rt_apply_t *self, uint64_t seq) RT_WUR;

/* Source transactions and changes committed on the replica since start. */
uint64_t rt_apply_applied_txns(const rt_apply_t *self);
uint64_t rt_apply_applied_rows(const rt_apply_t *self);
/* Schema changes (DDL) committed since creation. */
uint64_t rt_apply_ddl_applied(const rt_apply_t *self);

/* Replica sequences moved forward (records of sequences) and committed since start. */
uint64_t rt_apply_sequences_moved(const rt_apply_t *self);

/* ---- Streamed transactions (schemas/protocol.md, "Streamed transactions"): a source
 * transaction that the publisher sent in blocks while it still ran is applied, block by
 * block, in a transaction of a second session (the side), and committed in place of its
 * records when they come: the side session then takes over the origin rt_<source> for
 * its commit, so the rows and the progress still commit together. */

/* Makes self a side session (before rt_apply_connect): its own origin is
 * rt_<source>#stream, which never moves (it marks its writes as rt's, so that a
 * publisher on the replica leaves them out); it holds no tables for copies. */
void rt_apply_set_side(rt_apply_t *self);

/* Forgets the last failure (rt_apply_last_error): a side session's, told when its
 * transaction was given up, before its next one. */
void rt_apply_forget_error(rt_apply_t *self);

/* True when self applies records as they are: the error policy, no table held by an
 * initial copy or a resync, no replay, no DDL to skip: a streamed transaction may then be
 * applied on a side session. */
bool rt_apply_plain(const rt_apply_t *self);

/* In the side's open transaction (begun if none is), SAVEPOINT for subtransaction subxid,
 * or with rollback ROLLBACK TO it (nothing when no transaction is open). RT_OK or an
 * error as rt_apply_record (the transaction is then rolled back). */
int rt_apply_side_savepoint(rt_apply_t *side, uint32_t subxid, bool rollback) RT_WUR;

/* Commits the side's open transaction as the source transaction whose LAST record is
 * last, in main's place: main (no transaction open) lets go of the origin rt_<source>,
 * the side takes it, records last's seq and commit time (and rt.progress with mark) and
 * commits, then each takes its own origin again. main's applied seq is then last's.
 * RT_OK; else the side's transaction is rolled back (its session closed when it may still
 * hold the origin) and the error returned as rt_apply_record returns it; main's session
 * is closed when it cannot take its origin again (it reconnects). */
int rt_apply_side_commit(rt_apply_t *side, rt_apply_t *main, const rt_record_t *last,
                         bool mark) RT_WUR;

/* While a side transaction is open, main waits for a lock at most RT_APPLY_GUARD_MS (a
 * replica whose rows differ from the source's could have main wait for the side, which
 * waits for main); on: sets it (when no transaction is open; else later), off: resets it.
 * RT_OK or an error as rt_apply_commit. */
#define RT_APPLY_GUARD_MS 5000
int rt_apply_guard(rt_apply_t *main, bool on);

#endif
