/* subscriber/apply.c - applies outbox records to the replica exactly once (libpq):
 * records, commit and rollback.
 *
 * Session (apply_session.c): session_replication_role = replica, replication origin
 * rt_<source> bound to the session; its remote_lsn is the seq of the last LAST record
 * applied.
 *
 * Each record is one pipeline segment on an explicitly open transaction:
 *   [BEGIN] (Parse rt_<n>)? Bind/Execute per change ... Sync
 * and its results are checked (UPDATE/DELETE must touch exactly one row) before
 * the next record is sent (apply_pipeline.c). A run of INSERTs into one relation is
 * written with COPY ... FROM STDIN instead (apply_copy.c), except under a policy that
 * resolves conflicts and for the records a failed COPY covered. A group of source transactions ends
 * with [SELECT pg_current_xact_id()] SELECT pg_replication_origin_xact_setup(seq, ts) COMMIT Sync
 * (the origin's progress joined, when the group holds records the outbox had not stored,
 * by its write to rt.progress in the same statement) so the data and the progress commit
 * together.
 *
 * Conflicts (an INSERT of an existing key, an UPDATE or DELETE matching no row) stop
 * applying under the error policy and are resolved under the others (apply_remote,
 * skip), each record then preceded by SAVEPOINT rt_record; either way they are recorded in
 * rt.conflicts (conflict.c).
 */
#include "apply_int.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

/* Source transactions per replica transaction under a resolving policy: each record is a
 * subtransaction there, and PostgreSQL caches only 64 subtransaction ids per backend. */
#define S_REMOTE_GROUP_TXNS 50
/* Times a record is read and written again under keep_local or last_write_wins when a
 * concurrent local write came between its reads and its writes. */
#define S_VERSIONED_ATTEMPTS 5
/* Times a record that the replica failed on a deadlock or a serialization failure is
 * applied again at once. */
#define S_TRANSIENT_ATTEMPTS 5
/* Most changes of a record that commits in the segment of its changes. */
#define S_ONE_TRIP_CHANGES 16
/* Changes queued between two sends to the replica within a record's segment: the
 * segment goes out whole at its Sync (one send, one wake-up of the replica's backend,
 * for a small transaction), a long one in parts, so that the replica works on one
 * part while the next is built. */
#define S_FLUSH_CHANGES 32

rt_apply_t *rt_apply_new(const char *dsn, volatile sig_atomic_t *stop)
{
    rt_apply_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup(dsn);
    self->stop = stop;
    self->cache = rt__pipeline_cache_new();
    if (!self->dsn || !self->cache) {
        rt_apply_destroy(&self);
        return NULL;
    }
    return self;
}

void rt_apply_destroy(rt_apply_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_apply_t *self = *self_p;
    rt_apply_close(self);
    zhashx_destroy(&self->cache);
    free(self->dsn);
    free(self->source);
    free(self->ops);
    free(self->params);
    free(self->trels);
    free(self->relkeys);
    rt__skip_free(self);
    rt__versioned_free(self);
    zhashx_destroy(&self->seq_warned);
    free(self->fchanges);
    free(self->ftrunc);
    free(self->fheld);
    free(self->copy_buf);
    free(self);
    *self_p = NULL;
}

bool rt__apply_stopping(const rt_apply_t *self)
{
    return self->stop && *self->stop;
}

void rt__apply_error(rt_apply_t *self, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (self->side)
        rt_warn("%s", line); /* main applies what the side could not */
    else
        rt_error("%s", line);
    size_t n = strnlen(line, sizeof self->last_error - 1);
    memcpy(self->last_error, line, n);
    self->last_error[n] = '\0';
}

void rt__apply_transient(rt_apply_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->last_error, sizeof self->last_error, fmt, ap);
    va_end(ap);
    rt_info("%s; applying it again", self->last_error);
}

/* Forgets the open transaction (after rollback, commit failure or disconnect). */
static void s_reset_txn(rt_apply_t *self)
{
    self->in_txn = false;
    self->mid_txn = false;
    self->position = self->applied_seq;
    self->group_txns = 0;
    self->group_seqrecs = 0;
    self->group_seq_moved = 0;
    self->group_ddl = 0;
    self->group_bytes = 0;
    self->group_changes = 0;
    self->group_seq = 0;
    self->group_ts = 0;
    self->group_lsn = 0;
    self->group_mark = false;
    self->one_trip = false;
    self->group_conflicts = 0;
    self->skip_past = 0;
    self->copying = false;
    self->copy_len = 0;
    self->run_rows = 0;
    self->run_key[0] = '\0';
}

void rt__apply_drop(rt_apply_t *self)
{
    self->guarded = false;
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    zhashx_purge(self->cache);
    rt__versioned_txn_end(self, false);
    s_reset_txn(self);
}

void rt_apply_close(rt_apply_t *self)
{
    if (!self->conn)
        return;
    if (self->in_txn && PQstatus(self->conn) == CONNECTION_OK)
        rt_apply_rollback(self);
    rt__apply_drop(self);
}

bool rt_apply_connected(const rt_apply_t *self)
{
    return self->conn != NULL;
}

uint64_t rt_apply_applied_seq(const rt_apply_t *self)
{
    return self->applied_seq;
}

uint64_t rt_apply_durable_seq(const rt_apply_t *self)
{
    return self->durable_seq < self->applied_seq ? self->durable_seq : self->applied_seq;
}

uint64_t rt_apply_next_seq(const rt_apply_t *self)
{
    return self->position + 1;
}

bool rt_apply_in_txn(const rt_apply_t *self)
{
    return self->in_txn;
}

bool rt_apply_commit_ready(const rt_apply_t *self)
{
    return self->in_txn && !self->mid_txn && (self->group_txns > 0 || self->group_seqrecs > 0);
}

bool rt_apply_group_full(const rt_apply_t *self)
{
    /* Under last_write_wins a row's commit time must be its source transaction's own:
     * one source transaction per replica transaction. */
    uint32_t txns = self->policy == RT_CONFLICT_LWW && self->position >= self->remote_until ? 1
                    : self->policy != RT_CONFLICT_ERROR || self->position < self->remote_until
                        ? S_REMOTE_GROUP_TXNS
                        : RT_APPLY_GROUP_TXNS;
    /* A schema change is committed before the next source transaction: some take effect
     * only then (a value ALTER TYPE ... ADD VALUE adds is usable after its commit). */
    return self->group_txns >= txns || self->group_bytes >= RT_APPLY_GROUP_BYTES ||
           (self->group_ddl > 0 && !self->mid_txn);
}

const char *rt_apply_last_error(const rt_apply_t *self)
{
    return self->last_error;
}

bool rt_apply_transient(const rt_apply_t *self)
{
    return self->transient;
}

int64_t rt_apply_last_commit_ts(const rt_apply_t *self)
{
    return self->last_commit_ts;
}

int64_t rt_apply_last_applied_at(const rt_apply_t *self)
{
    return self->last_applied_at;
}

int64_t rt_apply_txn_age_ms(const rt_apply_t *self)
{
    return self->in_txn ? rt_mono_ms() - self->txn_start_ms : 0;
}

const char *rt_apply_target(const rt_apply_t *self)
{
    return self->target;
}

/* Handles a failed segment: drops a broken connection, else rolls back. */
static int s_failed(rt_apply_t *self, int err);

int rt__apply_failed(rt_apply_t *self, int err)
{
    return s_failed(self, err);
}

void rt__apply_reset_txn(rt_apply_t *self)
{
    s_reset_txn(self);
}

static int s_failed(rt_apply_t *self, int err)
{
    if (err == RT_EAGAIN) {
        rt__apply_drop(self);
        return err;
    }
    if (err == RT_EIO || !self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        char line[512];
        const char *why =
            self->conn ? rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line) : "closed";
        if (!why[0])
            why = "its results did not match the commands sent; reconnecting";
        rt__apply_error(self, "lost connection to the replica %s: %s", self->target, why);
        rt__apply_drop(self);
        return RT_EIO;
    }
    rt_apply_rollback(self);
    if (!self->conn)
        return RT_EIO;
    return err;
}

/* err as rt_apply_* returns it: what the applier does not apply again is RT_EDB. */
static int s_outward(rt_apply_t *self, int err);

int rt__apply_outward(rt_apply_t *self, int err)
{
    return s_outward(self, err);
}

static int s_outward(rt_apply_t *self, int err)
{
    self->transient = err == RT__ETRANSIENT;
    return self->transient ? RT_EDB : err;
}

void rt_apply_rollback(rt_apply_t *self)
{
    rt__versioned_txn_end(self, false);
    if (!self->conn || !self->in_txn) {
        s_reset_txn(self);
        return;
    }
    self->nops = 0;
    if (self->copying && rt__copy_abort(self) != RT_OK) {
        rt__apply_drop(self);
        return;
    }
    int err = rt__pipeline_send(self, RT__OP_ROLLBACK, "ROLLBACK", 0, NULL);
    if (err == RT_OK)
        err = rt__pipeline_sync(self, NULL);
    if (err != RT_OK) {
        if (err != RT_EAGAIN) {
            char line[512];
            rt__apply_error(self, "lost connection to the replica %s during rollback: %s",
                            self->target,
                            rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
        }
        rt__apply_drop(self);
        return;
    }
    s_reset_txn(self);
}

/* Schemas rt never writes, whatever a record says: PostgreSQL's own (pg_catalog, sent
 * as "" by pgoutput, pg_toast, pg_temp_N and every other pg_ name, information_schema)
 * and rt's own (rt.conflicts). */
static bool s_schema_protected(const char *schema)
{
    return schema[0] == '\0' || strncmp(schema, "pg_", 3) == 0 ||
           strcmp(schema, "information_schema") == 0 || strcmp(schema, "rt") == 0;
}

/* Whether runs of inserts may go through COPY: under the policy error, past the records
 * a failed COPY left to single statements. */
static bool s_use_copy(const rt_apply_t *self, const rt_record_t *rec, int policy)
{
    return policy == RT_CONFLICT_ERROR && rec->seq > self->nocopy_until && !self->one_trip;
}

/* Whether rec, a whole source transaction starting a replica transaction, may commit in
 * the pipeline segment of its changes (one round trip to the replica instead of two).
 * Only where every conflict is an error that aborts the segment and with it the COMMIT
 * queued behind: under the policy error a few row changes, a duplicate key being an
 * error already and an UPDATE or DELETE made to fail unless it touches one row
 * (rt_sqlgen_checked; the record is then applied again the usual way, which tells the
 * conflict). */
static bool s_one_trip_ok(const rt_apply_t *self, const rt_record_t *rec, int policy)
{
    const uint32_t whole = RT_REC_FIRST | RT_REC_LAST;
    if (self->in_txn || policy != RT_CONFLICT_ERROR || (rec->flags & whole) != whole ||
        rec->nchanges == 0 || rec->nchanges > S_ONE_TRIP_CHANGES || rt_record_is_sequences(rec))
        return false;
    for (uint32_t i = 0; i < rec->nchanges; i++)
        if (!strchr("IUD", rec->changes[i].op))
            return false;
    return true;
}

/* Applies the row changes of rec (no DDL among them) in the open transaction. */
static int s_apply_rows(rt_apply_t *self, const rt_record_t *rec, int policy)
{
    int err = RT_OK, sent = RT_OK;
    bool versioned = rt__versioned_policy(policy);
    bool remote = policy != RT_CONFLICT_ERROR && !versioned;
    bool use_copy = s_use_copy(self, rec, policy);
    uint64_t resolved_before = self->group_conflicts;

    if ((remote || versioned) &&
        (err = rt__pipeline_send_fixed(self, RT__OP_MISC, "SAVEPOINT rt_record", 0, NULL)) != RT_OK)
        return err;
    for (int attempt = 1; versioned; attempt++) {
        err = rt__versioned_record(self, rec, policy);
        bool again = (err == RT_ECONFLICT && self->vrace) || err == RT__ETRANSIENT;
        if (!again || attempt == S_VERSIONED_ATTEMPTS)
            return err;
        if (err == RT_ECONFLICT)
            rt_debug("seq %" PRIu64 ": a row changed between its read and its write; reading "
                     "it again",
                     rec->seq);
        self->nops = 0;
        self->conflict_set = false;
        self->group_conflicts = resolved_before;
        if (self->tombs)
            zhashx_purge(self->tombs); /* tombstone tables made since the savepoint */
        if ((err = rt__pipeline_send(self, RT__OP_MISC, "ROLLBACK TO SAVEPOINT rt_record", 0,
                                     NULL)) != RT_OK ||
            (err = rt__pipeline_run(self, NULL)) != RT_OK)
            return err;
    }
    uint32_t copy_rel = UINT32_MAX; /* relation index of this record the open COPY writes */
    uint32_t unflushed = 0;         /* changes queued since the last send */
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        const char *key = NULL;
        /* Within a record a run continues without looking up its relation again. */
        bool to_copy = use_copy && self->copying && ch->op == 'I' && ch->rel == copy_rel;
        if (!to_copy && use_copy && ch->op == 'I' && ch->rel < rec->nrels &&
            rec->rels[ch->rel].ncols > 0) {
            if (!(key = rt__copy_rel_key(self, rec, ch->rel))) {
                sent = RT_EPROTO;
                break;
            }
            if (self->copying && strcmp(self->copy_key, key) != 0 &&
                (err = rt__copy_end(self)) != RT_OK)
                return err;
            if (self->copying || rt__copy_wanted(self, rec, i, key)) {
                /* Everything queued before runs first, then this row goes to the COPY. */
                if (!self->copying && self->nops > 0 &&
                    (err = rt__pipeline_sync(self, rec)) != RT_OK)
                    return err;
                if (!self->copying && (err = rt__copy_start(self, rec, ch->rel, key)) != RT_OK)
                    return err;
                copy_rel = ch->rel;
                to_copy = true;
            }
        }
        if (to_copy) {
            if ((sent = rt__copy_row(self, rec, ch)) == RT_OK)
                continue;
            if (sent != RT_EPROTO && sent != RT_ENOMEM)
                return sent; /* the server failed the COPY: already told */
            break;
        }
        if (self->copying && (err = rt__copy_end(self)) != RT_OK)
            return err;
        if ((sent = rt__pipeline_send_change(self, rec, i)) != RT_OK)
            break;
        if (++unflushed == S_FLUSH_CHANGES && (sent = rt__pipeline_flush(self)) != RT_OK)
            break;
        unflushed %= S_FLUSH_CHANGES;
        rt__copy_run_note(self, ch->op == 'I' ? key : NULL);
    }
    if (sent == RT_EIO || sent == RT_EAGAIN)
        return sent;
    /* A record that commits in one trip leaves its segment open for the commit. */
    if (!self->copying && self->nops > 0 && (!self->one_trip || sent != RT_OK))
        err = rt__pipeline_sync(self, rec);
    if (err == RT_OK && sent != RT_OK) {
        if (sent == RT_EPROTO)
            rt__apply_error(self,
                            "seq %" PRIu64 ": a change does not fit its relation (row image or "
                            "parameter missing, or an unchanged value where one is needed)",
                            rec->seq);
        else
            rt__apply_error(self, "seq %" PRIu64 ": cannot apply record: %s", rec->seq,
                            rt_strerror(sent));
        err = sent;
    }
    if (err == RT_ECONFLICT && remote) {
        /* Again from the savepoint, one change at a time, resolving as it goes. */
        self->nops = 0;
        self->conflict_set = false;
        self->group_conflicts = resolved_before;
        err = rt__pipeline_send(self, RT__OP_MISC, "ROLLBACK TO SAVEPOINT rt_record", 0, NULL);
        if (err == RT_OK)
            err = rt__pipeline_run(self, NULL);
        if (err == RT_OK)
            err = rt__conflict_resolve_record(self, rec);
    }
    return err;
}

/* Applies rec's changes: its rows, and each DDL change in its place among them (the rows
 * before it, it, the rows after it). */
static int s_apply_changes(rt_apply_t *self, const rt_record_t *rec, int policy)
{
    uint32_t start = 0;
    int err;
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        if (rec->changes[i].op != 'L')
            continue;
        rt_record_t part = *rec;
        part.changes = rec->changes + start;
        part.nchanges = i - start;
        if ((part.nchanges && (err = s_apply_rows(self, &part, policy)) != RT_OK) ||
            (self->copying && (err = rt__copy_end(self)) != RT_OK) ||
            (err = rt__ddl_apply(self, rec, i)) != RT_OK)
            return err;
        start = i + 1;
    }
    if (start == 0)
        return s_apply_rows(self, rec, policy);
    rt_record_t rest = *rec;
    rest.changes = rec->changes + start;
    rest.nchanges = rec->nchanges - start;
    if (rest.nchanges)
        return s_apply_rows(self, &rest, policy);
    /* What is queued (a BEGIN before a DDL left out) runs with the record, as after rows. */
    return self->nops > 0 ? rt__pipeline_sync(self, rec) : RT_OK;
}

/* Queues the commit of the open transaction behind what is queued: the origin's
 * progress (its last source transaction's seq and commit time), rt.progress when the
 * group is marked, the replay's record in a replay, and COMMIT. */
static int s_queue_commit(rt_apply_t *self)
{
    char lsn[32], ts[32];
    int err;

    rt_lsn_format(self->group_seq, lsn, sizeof lsn);
    snprintf(ts, sizeof ts, "%" PRId64, self->group_ts); /* exact: it orders versions */
    /* A transaction without an xid writes no commit record and would not advance
     * the origin: give an all-empty group one. */
    if (self->group_changes == 0 &&
        (err = rt__pipeline_send_fixed(self, RT__OP_MISC, "SELECT pg_current_xact_id()", 0,
                                       NULL)) != RT_OK)
        return err;
    /* In a replay the origin stays where it is (it only moves forward): how far the
     * replay went is recorded with what it applied. */
    char seq[24], to[24];
    snprintf(seq, sizeof seq, "%" PRIu64, self->group_seq);
    snprintf(to, sizeof to, "%" PRIu64, self->replay_to);
    const char *rparams[3] = {self->source, seq, to};
    if (self->replay_to && (err = rt__pipeline_send_fixed(self, RT__OP_MISC, rt__skip_replayed_sql,
                                                          3, rparams)) != RT_OK)
        return err;
    char mlsn[32];
    rt_lsn_format(self->group_lsn, mlsn, sizeof mlsn);
    const char *params[5] = {lsn, ts, self->source, seq, mlsn};
    if ((err = rt__pipeline_send_fixed(self, RT__OP_MISC,
                                       self->group_mark ? rt__origin_setup_marked_sql
                                                        : rt__origin_setup_sql,
                                       self->group_mark ? 5 : 2, params)) != RT_OK)
        return err;
    return rt__pipeline_send_fixed(self, RT__OP_COMMIT, "COMMIT", 0, NULL);
}

int rt_apply_flush(rt_apply_t *self)
{
    if (!self->conn || self->in_txn || self->durable_seq >= self->applied_seq)
        return RT_OK;
    /* With flush, the function writes the WAL to disk up to the origin's last local
     * commit, which is this session's last. */
    uint64_t upto = self->applied_seq;
    const char *params[1] = {self->origin};
    int err = rt__pipeline_send_fixed(
        self, RT__OP_MISC, "SELECT pg_catalog.pg_replication_origin_progress($1, true)", 1, params);
    if (err == RT_OK)
        err = rt__pipeline_sync(self, NULL);
    if (err != RT_OK)
        return s_outward(self, s_failed(self, err));
    self->durable_seq = upto;
    return RT_OK;
}

/* Takes note of a commit the replica confirmed. */
static void s_committed(rt_apply_t *self)
{
    self->applied_seq = self->group_seq;
    if (self->group_mark) {
        self->mark_seq = self->group_seq;
        self->mark_lsn = self->group_lsn;
    }
    if (self->skip_past && self->group_seq >= self->skip_past) {
        rt_debug("the stream is past the copies' snapshots: every change applies now");
        rt__skip_free(self);
    }
    if (self->replay_to && self->group_seq >= self->replay_to) {
        rt_info("the replay for the resynced tables is done at seq %" PRIu64, self->replay_to);
        self->replay_to = 0; /* recorded: the next commit records nothing */
    }
    self->last_commit_ts = self->group_ts;
    self->last_applied_at = rt_pg_now_us();
    self->conflicts += self->group_conflicts;
    self->applied_txns += self->group_txns;
    self->applied_rows += self->group_changes;
    self->sequences_moved += self->group_seq_moved;
    self->ddl_applied += self->group_ddl;
    self->last_error[0] = '\0';
    rt__versioned_txn_end(self, true);
    s_reset_txn(self);
    rt__versioned_purge(self, false);
}

/* rt_apply_commit, returning RT__ETRANSIENT too. */
static int s_commit(rt_apply_t *self)
{
    int err;

    assert(rt_apply_commit_ready(self));
    self->nops = 0;
    if ((self->copying && (err = rt__copy_end(self)) != RT_OK) ||
        (err = s_queue_commit(self)) != RT_OK || (err = rt__pipeline_sync(self, NULL)) != RT_OK)
        return s_failed(self, err);
    s_committed(self);
    return RT_OK;
}

int rt_apply_commit(rt_apply_t *self)
{
    return s_outward(self, s_commit(self));
}

/* Rolls back after a record (or the commit in its segment) failed; a conflict that
 * stops applying is recorded. */
static int s_record_failed(rt_apply_t *self, int err)
{
    bool conflict = err == RT_ECONFLICT && self->conflict_set && !self->side;
    err = s_failed(self, err);
    if (conflict && err == RT_ECONFLICT)
        rt__conflict_record_stop(self);
    return err;
}

/* Applies rec; with commit, then commits the transaction if it may, marked in
 * rt.progress with mark, in the same pipeline segment when one_trip and s_one_trip_ok. */
static int s_record_try(rt_apply_t *self, const rt_record_t *rec, size_t bytes, bool commit,
                        bool mark, bool one_trip)
{
    int err = RT_OK;

    assert(self->conn && rec->seq == self->position + 1);
    if (!(rec = rt__skip_filter(self, rec)))
        return RT_ENOMEM;
    /* The tables a record changes, and the sequences it moves: none in those schemas. */
    const char *schema = NULL, *name = NULL;
    for (uint32_t i = 0; !schema && i < rec->nrels; i++)
        if (s_schema_protected(rec->rels[i].schema)) {
            schema = rec->rels[i].schema;
            name = rec->rels[i].table;
        }
    for (uint32_t i = 0; !schema && i < rec->nchanges; i++)
        if (rec->changes[i].op == 'Q' && s_schema_protected(rec->changes[i].seq_schema)) {
            schema = rec->changes[i].seq_schema;
            name = rec->changes[i].seq_name;
        }
    if (schema) {
        rt__apply_error(self,
                        "seq %" PRIu64 ": the record changes %s.%s; rt never writes system "
                        "catalogs or its own schema rt: refused",
                        rec->seq, schema[0] ? schema : "pg_catalog", name);
        rt_apply_rollback(self);
        return self->conn ? RT_EPROTO : RT_EIO;
    }
    bool first = (rec->flags & RT_REC_FIRST) != 0;
    if (first == self->mid_txn) {
        rt__apply_error(self,
                        "seq %" PRIu64 ": record flags %u %s; the outbox stream is inconsistent",
                        rec->seq, rec->flags,
                        first ? "start a transaction before the previous one ended"
                              : "continue a transaction that was never started");
        rt_apply_rollback(self);
        return self->conn ? RT_EPROTO : RT_EIO;
    }
    if (!first && rec->commit_lsn != self->txn_commit_lsn) {
        /* The publisher discarded the stored chunks of a transaction the source never
         * sent again, and stored another in their place: start over from the last
         * commit, which refetches the records now stored. */
        char a[32], b[32];
        rt__apply_error(self,
                        "seq %" PRIu64 ": record of the source transaction committed at %s "
                        "continues one committed at %s: the publisher replaced an incomplete "
                        "transaction; applying again from seq %" PRIu64,
                        rec->seq, rt_lsn_format(rec->commit_lsn, a, sizeof a),
                        rt_lsn_format(self->txn_commit_lsn, b, sizeof b), self->applied_seq + 1);
        rt_apply_rollback(self);
        return self->conn ? RT_EPROTO : RT_EIO;
    }
    if (first)
        self->txn_commit_lsn = rec->commit_lsn;
    int policy = rt__conflict_policy_for(self, rec->seq);
    bool sequences = rt_record_is_sequences(rec);
    self->one_trip = commit && one_trip && s_one_trip_ok(self, rec, policy);
    self->conflict_set = false;
    self->nops = 0;
    if (self->copying && (sequences || !s_use_copy(self, rec, policy)) &&
        (err = rt__copy_end(self)) != RT_OK)
        goto failed;
    if (!self->in_txn) {
        if ((err = rt__pipeline_send_fixed(self, RT__OP_BEGIN, "BEGIN", 0, NULL)) != RT_OK)
            return s_failed(self, err);
        self->in_txn = true;
        self->txn_start_ms = rt_mono_ms();
    }
    if (sequences) {
        err = rt__sequence_apply(self, rec);
        goto failed;
    }
    err = s_apply_changes(self, rec, policy);
failed:
    if (err != RT_OK)
        return s_record_failed(self, err);
    self->position = rec->seq;
    self->group_bytes += bytes;
    self->mid_txn = (rec->flags & RT_REC_LAST) == 0;
    if (sequences) {
        /* No source transaction, no row: the group's commit time stays its last
         * transaction's (under last_write_wins it is the rows' version). */
        self->group_seqrecs++;
        self->group_seq = rec->seq;
        self->group_lsn = rec->commit_lsn;
        if (self->group_txns == 0)
            self->group_ts = rec->commit_ts;
    } else {
        self->group_changes += rec->nchanges;
        if (!self->mid_txn) {
            self->group_txns++;
            self->group_seq = rec->seq;
            self->group_lsn = rec->commit_lsn;
            self->group_ts = rec->commit_ts;
        }
    }
    if (!commit || !rt_apply_commit_ready(self))
        return RT_OK;
    self->group_mark |= mark;
    if (!self->one_trip)
        return s_commit(self);
    /* The changes' segment is still open: the commit joins it, and one Sync ends both. */
    if ((err = s_queue_commit(self)) != RT_OK || (err = rt__pipeline_sync(self, rec)) != RT_OK)
        return s_record_failed(self, err);
    s_committed(self);
    return RT_OK;
}

static int s_record(rt_apply_t *self, const rt_record_t *rec, size_t bytes, bool commit, bool mark)
{
    int err = RT__ETRANSIENT;
    for (int attempt = 1; err == RT__ETRANSIENT; attempt++) {
        err = s_record_try(self, rec, bytes, commit, mark, true);
        if (err == RT__ERECHECK) {
            rt_debug("seq %" PRIu64 ": an UPDATE or DELETE did not touch one row; applying the "
                     "record again with its row counts read before its commit",
                     rec->seq);
            err = s_record_try(self, rec, bytes, commit, mark, false);
        }
        /* Again here only when the rollback took nothing applied before rec; otherwise
         * the link fetches the replica transaction again from its first record. */
        if (err == RT__ETRANSIENT &&
            (attempt == S_TRANSIENT_ATTEMPTS || !self->conn || rec->seq != self->position + 1))
            break;
    }
    return s_outward(self, err);
}

int rt_apply_record(rt_apply_t *self, const rt_record_t *rec, size_t bytes)
{
    return s_record(self, rec, bytes, false, false);
}

int rt_apply_record_commit(rt_apply_t *self, const rt_record_t *rec, size_t bytes, bool mark)
{
    return s_record(self, rec, bytes, true, mark);
}

void rt_apply_mark_group(rt_apply_t *self)
{
    self->group_mark = true;
}

bool rt_apply_mark(const rt_apply_t *self, rt_lsn_t *lsn)
{
    /* In a replay for resynced tables applied_seq is where the replay stands, not the
     * origin's progress: a stored seq. */
    if (!self->mark_seq || self->mark_seq != self->applied_seq || self->replay_to)
        return false;
    *lsn = self->mark_lsn;
    return true;
}

uint64_t rt_apply_applied_txns(const rt_apply_t *self)
{
    return self->applied_txns;
}

uint64_t rt_apply_applied_rows(const rt_apply_t *self)
{
    return self->applied_rows;
}

uint64_t rt_apply_ddl_applied(const rt_apply_t *self)
{
    return self->ddl_applied;
}

uint64_t rt_apply_sequences_moved(const rt_apply_t *self)
{
    return self->sequences_moved;
}
