/* subscriber/conflict.c - the applier's conflicts: described, recorded and resolved,
 * and the conflict-policy words and rules.
 *
 * Conflicts (an INSERT of an existing key, an UPDATE or DELETE matching no row):
 * under the error policy the transaction is rolled back, the conflict recorded in
 * rt.conflicts in a transaction of its own and RT_ECONFLICT returned. Under a policy
 * that resolves (apply_remote, skip) each record is preceded by SAVEPOINT rt_record;
 * a conflicting record is rolled back to it and applied again one change at a time,
 * each conflict resolved as rt_conflict_decide says:
 *   INSERT   SAVEPOINT rt_change; INSERT; on 23505: ROLLBACK TO rt_change, then
 *            UPDATE the row with that key to the new row, or keep it (insert_exists)
 *   UPDATE   0 rows: INSERT the new row if it is complete, or skip  (update_missing)
 *   DELETE   0 rows: nothing                                          (delete_missing)
 * each resolution recorded in rt.conflicts in the same transaction.
 */
#include "conflict.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "initcopy.h"
#include "log.h"
#include "sqlgen.h"

/* Resolved conflicts are logged one by one up to this many, then every S_LOG_EVERY-th. */
#define S_LOG_FIRST 10
#define S_LOG_EVERY 1000

/* The table every conflict is recorded in (the rt schema is left out of checksums),
 * created with its schema when missing. Only then: CREATE ... IF NOT EXISTS checks the
 * CREATE privilege even when the object exists, and a replica role that is not a
 * superuser may have been given a schema rt created for it instead. The subscriber's
 * sessions create the rt schema under one transaction-level advisory lock (key
 * RT_SCHEMA_LOCK, shared with rt_initcopy_ddl), so that two of them never both find it
 * missing. */
const char *const rt__conflicts_ddl = RT_SCHEMA_DDL_BEGIN
    "IF to_regclass('rt.conflicts') IS NULL THEN "
    "CREATE TABLE rt.conflicts ("
    "id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), source text, "
    "seq bigint, relation text, op text, kind text, resolution text, detail text); "
    "END IF; "
    "IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'rt.conflicts'::regclass "
    "AND attname = 'remote_time') THEN "
    "ALTER TABLE rt.conflicts ADD COLUMN local_node text, ADD COLUMN local_time timestamptz, "
    "ADD COLUMN remote_node text, ADD COLUMN remote_time timestamptz; "
    "END IF; END$rt$";
/* Times are PostgreSQL epoch microseconds, converted exactly. */
static const char *const s_conflicts_insert =
    "INSERT INTO rt.conflicts (source, seq, relation, op, kind, resolution, detail, "
    "local_node, local_time, remote_node, remote_time) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
    "timestamptz '2000-01-01 00:00:00+00' + $9::bigint * interval '1 microsecond', $10, "
    "timestamptz '2000-01-01 00:00:00+00' + $11::bigint * interval '1 microsecond')";

const char *const rt_conflict_policy_words[RT_CONFLICT_NPOLICIES + 1] = {
    [RT_CONFLICT_ERROR] = "error",         [RT_CONFLICT_APPLY_REMOTE] = "apply_remote",
    [RT_CONFLICT_SKIP] = "skip",           [RT_CONFLICT_KEEP_LOCAL] = "keep_local",
    [RT_CONFLICT_LWW] = "last_write_wins", [RT_CONFLICT_NPOLICIES] = NULL,
};

int rt_conflict_policy_parse(const char *word, int *policy)
{
    for (int i = 0; i < RT_CONFLICT_NPOLICIES; i++)
        if (strcmp(word, rt_conflict_policy_words[i]) == 0) {
            *policy = i;
            return RT_OK;
        }
    return RT_EINVAL;
}

const char *rt_conflict_policy_name(int policy)
{
    if (policy < 0 || policy >= RT_CONFLICT_NPOLICIES)
        policy = RT_CONFLICT_ERROR;
    return rt_conflict_policy_words[policy];
}

static const char *const s_kind_words[RT_CONFLICT_NKINDS] = {
    [RT_CONFLICT_INSERT_EXISTS] = "insert_exists",
    [RT_CONFLICT_UPDATE_MISSING] = "update_missing",
    [RT_CONFLICT_DELETE_MISSING] = "delete_missing",
    [RT_CONFLICT_UPDATE_DIFFERS] = "update_origin_differs",
    [RT_CONFLICT_DELETE_DIFFERS] = "delete_origin_differs",
    [RT_CONFLICT_INSERT_DELETED] = "insert_deleted",
    [RT_CONFLICT_UPDATE_DELETED] = "update_deleted",
};

const char *rt_conflict_kind_name(rt_conflict_kind_t kind)
{
    return (unsigned)kind < RT_CONFLICT_NKINDS ? s_kind_words[kind] : "conflict";
}

bool rt_conflict_remote_wins(const rt_version_t *local, const rt_version_t *remote)
{
    if (!local || !local->known)
        return true;
    if (!remote || !remote->known)
        return false;
    if (remote->ts != local->ts)
        return remote->ts > local->ts;
    return strcmp(remote->node ? remote->node : "", local->node ? local->node : "") > 0;
}

rt_resolve_t rt_conflict_decide(int policy, rt_conflict_kind_t kind, const rt_version_t *local,
                                const rt_version_t *remote, bool remote_complete)
{
    bool inserts = kind == RT_CONFLICT_UPDATE_MISSING || kind == RT_CONFLICT_UPDATE_DELETED;
    switch (policy) {
    case RT_CONFLICT_APPLY_REMOTE:
        if (kind == RT_CONFLICT_DELETE_MISSING)
            return RT_RESOLVE_SKIP;
        if (inserts && !remote_complete)
            return RT_RESOLVE_STOP;
        return RT_RESOLVE_APPLY;
    case RT_CONFLICT_SKIP:
        return kind == RT_CONFLICT_INSERT_EXISTS || kind == RT_CONFLICT_UPDATE_MISSING ||
                       kind == RT_CONFLICT_DELETE_MISSING
                   ? RT_RESOLVE_SKIP
                   : RT_RESOLVE_APPLY;
    case RT_CONFLICT_KEEP_LOCAL: return RT_RESOLVE_SKIP;
    case RT_CONFLICT_LWW:
        if (kind == RT_CONFLICT_DELETE_MISSING || !rt_conflict_remote_wins(local, remote))
            return RT_RESOLVE_SKIP;
        return inserts && !remote_complete ? RT_RESOLVE_STOP : RT_RESOLVE_APPLY;
    default: return RT_RESOLVE_STOP;
    }
}

void rt_apply_set_policy(rt_apply_t *self, int policy)
{
    self->policy = policy > 0 && policy < RT_CONFLICT_NPOLICIES ? policy : RT_CONFLICT_ERROR;
    /* A session not set up for a policy that decides by versions starts again. */
    if (self->conn && rt__versioned_policy(self->policy) && !self->versioned_ready) {
        rt_info("conflict policy %s: reconnecting to the replica to set it up",
                rt_conflict_policy_name(self->policy));
        rt_apply_close(self);
    }
}

void rt_apply_set_tombstone_hours(rt_apply_t *self, int hours)
{
    self->tombstone_hours = hours;
}

void rt_apply_set_node(rt_apply_t *self, const char *node)
{
    snprintf(self->node, sizeof self->node, "%s", node ? node : "");
}

int rt__conflict_policy_for(const rt_apply_t *self, uint64_t seq)
{
    return seq <= self->remote_until ? RT_CONFLICT_APPLY_REMOTE : self->policy;
}

void rt_apply_set_remote_until(rt_apply_t *self, uint64_t seq)
{
    self->remote_until = seq;
}

uint64_t rt_apply_conflicts(const rt_apply_t *self)
{
    return self->conflicts;
}

/* Writes "(k1, k2)=(v1, v2)" for the key columns of rel in img (values cut at 40 bytes)
 * into buf; "" when there is no key or no image. */
static void s_key_text(const rt_relation_t *rel, const rt_value_t *img, uint32_t n, char *buf,
                       size_t size)
{
    char names[256] = "", vals[256] = "";
    size_t nl = 0, vl = 0;
    buf[0] = '\0';
    if (!img || n != rel->ncols)
        return;
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (!rel->cols[i].key)
            continue;
        const rt_value_t *v = &img[i];
        const char *text = v->kind == RT_VAL_TEXT   ? v->data
                           : v->kind == RT_VAL_NULL ? "NULL"
                                                    : "(unchanged)";
        int a = snprintf(names + nl, sizeof names - nl, "%s%s", nl ? ", " : "", rel->cols[i].name);
        int b = snprintf(vals + vl, sizeof vals - vl, "%s%.40s", vl ? ", " : "", text);
        if (a < 0 || b < 0 || (size_t)a >= sizeof names - nl || (size_t)b >= sizeof vals - vl)
            break;
        nl += (size_t)a;
        vl += (size_t)b;
    }
    if (nl)
        snprintf(buf, size, "(%s)=(%s)", names, vals);
}

const char *rt__conflict_op_name(char op)
{
    return op == 'I' ? "INSERT" : op == 'U' ? "UPDATE" : op == 'D' ? "DELETE" : "TRUNCATE";
}

void rt__conflict_note(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, char op,
                       const char *kind, const char *fmt, ...)
{
    rt__conflict_t *c = &self->conflict;
    const rt_change_t *ch = &rec->changes[idx];
    memset(c, 0, sizeof *c);
    c->seq = rec->seq;
    c->change = idx;
    char *table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    snprintf(c->relation, sizeof c->relation, "%s", table ? table : "?");
    free(table);
    snprintf(c->op, sizeof c->op, "%s", rt__conflict_op_name(op));
    snprintf(c->kind, sizeof c->kind, "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    self->conflict_set = true;
}

void rt__conflict_key(const rt_record_t *rec, const rt_change_t *ch, char *buf, size_t size)
{
    const rt_relation_t *rel = &rec->rels[ch->rel];
    if (ch->old_kind)
        s_key_text(rel, ch->old, ch->nold, buf, size);
    else
        s_key_text(rel, ch->new_, ch->nnew, buf, size);
}

/* Queues the INSERT of self->conflict into rt.conflicts with resolution. */
static int s_queue_conflict_row(rt_apply_t *self, const char *resolution)
{
    const rt__conflict_t *c = &self->conflict;
    char seq[24], lts[24], rts[24];
    snprintf(seq, sizeof seq, "%" PRIu64, c->seq);
    snprintf(lts, sizeof lts, "%" PRId64, c->local_ts);
    snprintf(rts, sizeof rts, "%" PRId64, c->remote_ts);
    const char *params[11] = {self->source,
                              seq,
                              c->relation,
                              c->op,
                              c->kind,
                              resolution,
                              c->detail,
                              c->versions ? c->local_node : NULL,
                              c->versions && c->local_known ? lts : NULL,
                              c->versions ? c->remote_node : NULL,
                              c->versions ? rts : NULL};
    return rt__pipeline_send(self, RT__OP_MISC, s_conflicts_insert, 11, params);
}

/* Logs a conflict resolved by the policy (the first few, then a sample). */
static void s_log_resolved(rt_apply_t *self, const char *resolution)
{
    uint64_t n = self->conflicts + self->group_conflicts;
    if (n <= S_LOG_FIRST || n % S_LOG_EVERY == 0)
        rt_info("conflict at seq %" PRIu64 " (%s on %s) %s: %s (%" PRIu64 " conflicts so far)",
                self->conflict.seq, self->conflict.kind, self->conflict.relation, resolution,
                self->conflict.detail, n);
}

int rt__conflict_resolved(rt_apply_t *self, const char *resolution)
{
    self->group_conflicts++;
    s_log_resolved(self, resolution);
    self->conflict_set = false;
    return s_queue_conflict_row(self, resolution);
}

/* Runs stand-in statement ch for change idx as a probe: *rows gets its row count, or
 * -1 for a duplicate key (the transaction is then aborted up to the last savepoint). */
static int s_probe(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch, uint32_t idx,
                   int64_t *rows)
{
    self->probe_rows = 0;
    self->probe_detail[0] = '\0';
    int err = rt__pipeline_send_stmt(self, rec, ch, idx, true);
    if (err == RT_OK)
        err = rt__pipeline_run(self, rec);
    *rows = self->probe_rows;
    return err;
}

bool rt__change_complete(const rt_change_t *ch)
{
    for (uint32_t i = 0; i < ch->nnew; i++)
        if (ch->new_[i].kind == RT_VAL_UNCHANGED)
            return false;
    return ch->new_ != NULL;
}

/* Resolves an INSERT whose key exists (probe_detail says which row) the policy's way:
 * the row updated to the remote one, or the replica's row kept. */
static int s_insert_exists(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, int policy,
                           const char *key)
{
    const rt_change_t *ch = &rec->changes[idx];
    char found[256];
    int64_t rows;
    int err;

    snprintf(found, sizeof found, "%s", self->probe_detail);
    if ((err = rt__pipeline_send(self, RT__OP_MISC, "ROLLBACK TO SAVEPOINT rt_change", 0, NULL)) !=
        RT_OK)
        return err;
    rt_resolve_t r =
        rt_conflict_decide(policy, RT_CONFLICT_INSERT_EXISTS, NULL, NULL, rt__change_complete(ch));
    if (r == RT_RESOLVE_SKIP) {
        rt__conflict_note(self, rec, idx, 'I', "insert_exists",
                          "INSERT of %s: the row already exists on the replica (%s); kept the "
                          "replica's row",
                          key[0] ? key : "a row", found);
        return rt__conflict_resolved(self, "skipped");
    }
    if (r == RT_RESOLVE_APPLY) {
        /* Make that row the new one (UPDATE by the new row's key). */
        rt_change_t upd = {.op = 'U', .rel = ch->rel, .nnew = ch->nnew, .new_ = ch->new_};
        if ((err = s_probe(self, rec, &upd, idx, &rows)) != RT_OK)
            return err;
        if (rows == 1) {
            rt__conflict_note(self, rec, idx, 'I', "insert_exists",
                              "INSERT of %s: the row already exists on the replica (%s); "
                              "updated it to the remote row",
                              key[0] ? key : "a row", found);
            return rt__conflict_resolved(self, "applied_remote");
        }
        rt__conflict_note(self, rec, idx, 'I', "insert_exists",
                          "INSERT into the replica failed: %s, and no row has the key %s to "
                          "update",
                          found, key[0] ? key : "(none)");
        return RT_ECONFLICT;
    }
    rt__conflict_note(self, rec, idx, 'I', "insert_exists",
                      "INSERT of %s: the row already exists on the replica (%s)",
                      key[0] ? key : "a row", found);
    return RT_ECONFLICT;
}

/* Resolves an UPDATE (op 'U') or DELETE that matched no row the policy's way. */
static int s_missing(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, int policy,
                     const char *key, const char *table)
{
    const rt_change_t *ch = &rec->changes[idx];
    bool complete = rt__change_complete(ch);
    int64_t rows;
    int err;

    if (ch->op == 'D') {
        const char *how = "nothing to delete";
        rt_resolve_t r = rt_conflict_decide(policy, RT_CONFLICT_DELETE_MISSING, NULL, NULL, false);
        if (r == RT_RESOLVE_STOP)
            how = "stopped";
        rt__conflict_note(self, rec, idx, 'D', "delete_missing",
                          "DELETE of %s matched 0 rows on the replica (the row is missing): %s; %s",
                          table, key[0] ? key : "no key", how);
        return r == RT_RESOLVE_STOP ? RT_ECONFLICT : rt__conflict_resolved(self, "skipped");
    }
    rt_resolve_t r = rt_conflict_decide(policy, RT_CONFLICT_UPDATE_MISSING, NULL, NULL, complete);
    if (r == RT_RESOLVE_SKIP) {
        rt__conflict_note(self, rec, idx, 'U', "update_missing",
                          "UPDATE of %s matched 0 rows on the replica (the row is missing): %s; "
                          "skipped it",
                          table, key[0] ? key : "no key");
        return rt__conflict_resolved(self, "skipped");
    }
    if (r == RT_RESOLVE_APPLY) {
        rt_change_t ins = {.op = 'I', .rel = ch->rel, .nnew = ch->nnew, .new_ = ch->new_};
        if ((err = s_probe(self, rec, &ins, idx, &rows)) != RT_OK)
            return err;
        if (rows >= 0) {
            rt__conflict_note(self, rec, idx, 'U', "update_missing",
                              "UPDATE of %s matched 0 rows on the replica (the row is missing): "
                              "%s; inserted the remote row",
                              table, key[0] ? key : "no key");
            return rt__conflict_resolved(self, "applied_remote");
        }
        rt__conflict_note(self, rec, idx, 'U', "update_missing",
                          "UPDATE of %s matched 0 rows on the replica (the row is missing): %s; "
                          "inserting the remote row failed too (%s)",
                          table, key[0] ? key : "no key", self->probe_detail);
        return RT_ECONFLICT;
    }
    if (complete || policy != RT_CONFLICT_APPLY_REMOTE)
        rt__conflict_note(self, rec, idx, 'U', "update_missing",
                          "UPDATE of %s matched 0 rows on the replica (the row is missing): %s",
                          table, key[0] ? key : "no key");
    else
        rt__conflict_note(self, rec, idx, 'U', "update_missing",
                          "UPDATE of %s matched 0 rows on the replica (the row is missing): %s; "
                          "the remote row is incomplete (unchanged TOASTed values were not sent), "
                          "so it cannot be inserted",
                          table, key[0] ? key : "no key");
    return RT_ECONFLICT;
}

/* Applies change idx of rec one statement at a time, resolving conflicts by policy.
 * RT_ECONFLICT (self->conflict set) when one is not resolved. */
static int s_resolve_change(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, int policy)
{
    const rt_change_t *ch = &rec->changes[idx];
    char key[300];
    int64_t rows;
    int err;

    /* Commands queued by the change before (its rt.conflicts row) stay queued: their
     * results are read with this change's. */
    if (ch->op == 'T') {
        if ((err = rt__pipeline_send_change(self, rec, idx)) != RT_OK)
            return err;
        return rt__pipeline_run(self, rec);
    }
    rt__conflict_key(rec, ch, key, sizeof key);
    if (ch->op == 'I' && !key[0]) {
        if ((err = rt__pipeline_send_change(self, rec, idx)) != RT_OK ||
            (err = rt__pipeline_run(self, rec)) != RT_OK)
            return err; /* a duplicate key without an identity to resolve it by stops here */
        return RT_OK;
    }
    if (ch->op == 'I') {
        if ((err = rt__pipeline_send(self, RT__OP_MISC, "SAVEPOINT rt_change", 0, NULL)) != RT_OK ||
            (err = s_probe(self, rec, ch, idx, &rows)) != RT_OK)
            return err;
        return rows >= 0 ? RT_OK : s_insert_exists(self, rec, idx, policy, key);
    }
    if ((err = s_probe(self, rec, ch, idx, &rows)) != RT_OK)
        return err;
    if (rows == 1)
        return RT_OK;
    char *table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    const char *t = table ? table : "?";
    if (rows == 0)
        err = s_missing(self, rec, idx, policy, key, t);
    else if (rows < 0) {
        rt__conflict_note(self, rec, idx, ch->op, "update_exists",
                          "UPDATE of %s: the new key exists on the replica (%s): %s", t,
                          self->probe_detail, key[0] ? key : "no key");
        err = RT_ECONFLICT;
    } else {
        rt__conflict_note(self, rec, idx, ch->op,
                          ch->op == 'U' ? "update_multiple" : "delete_multiple",
                          "%s of %s matched %" PRId64 " rows on the replica instead of 1 (the "
                          "identity is not unique): %s",
                          rt__conflict_op_name(ch->op), t, rows, key[0] ? key : "no key");
        err = RT_ECONFLICT;
    }
    free(table);
    return err;
}

int rt__conflict_resolve_record(rt_apply_t *self, const rt_record_t *rec)
{
    int policy = rt__conflict_policy_for(self, rec->seq);
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        int err = s_resolve_change(self, rec, i, policy);
        if (err != RT_OK)
            return err;
    }
    if (self->nops == 0)
        return RT_OK;
    return rt__pipeline_run(self, rec); /* the last rt.conflicts row */
}

void rt__conflict_record_stop(rt_apply_t *self)
{
    const rt__conflict_t *c = &self->conflict;
    self->conflict_set = false;
    rt__apply_error(self,
                    "conflict at seq %" PRIu64 " (change %" PRIu32 "): %s; applying stopped "
                    "(conflict policy %s)",
                    c->seq, c->change + 1, c->detail, rt_conflict_policy_name(self->policy));
    if (c->seq == self->stop_seq && c->change == self->stop_change &&
        strcmp(c->kind, self->stop_kind) == 0)
        return;
    self->stop_seq = c->seq;
    self->stop_change = c->change;
    snprintf(self->stop_kind, sizeof self->stop_kind, "%s", c->kind);
    self->conflicts++;
    if (!self->conn || self->in_txn)
        return;
    self->nops = 0;
    /* The session's origin must not advance with this commit: no xact_setup values. */
    int err = rt__pipeline_send(self, RT__OP_MISC, "BEGIN", 0, NULL);
    if (err == RT_OK)
        err = rt__pipeline_send(self, RT__OP_MISC, "SELECT pg_replication_origin_xact_reset()", 0,
                                NULL);
    if (err == RT_OK)
        err = s_queue_conflict_row(self, "stopped");
    if (err == RT_OK)
        err = rt__pipeline_send(self, RT__OP_COMMIT, "COMMIT", 0, NULL);
    if (err == RT_OK)
        err = rt__pipeline_run(self, NULL);
    if (err == RT_OK)
        return;
    rt_warn("could not record the conflict at seq %" PRIu64 " in rt.conflicts: %s", c->seq,
            rt_strerror(err));
    if (err == RT_EIO || err == RT_EAGAIN || PQstatus(self->conn) != CONNECTION_OK) {
        rt__apply_drop(self);
        return;
    }
    self->nops = 0;
    if (rt__pipeline_send(self, RT__OP_ROLLBACK, "ROLLBACK", 0, NULL) != RT_OK ||
        rt__pipeline_run(self, NULL) != RT_OK)
        rt__apply_drop(self);
}
