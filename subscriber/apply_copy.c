/* subscriber/apply_copy.c - the applier's COPY path for runs of INSERTs.
 *
 * A run of at least S_COPY_MIN_ROWS consecutive INSERTs into one relation (within a
 * record, or across the records and source transactions of the open replica
 * transaction) is written with COPY ... FROM STDIN instead of prepared INSERTs: the
 * pipeline segment is synced first, the connection leaves pipeline mode, and the COPY
 * stays open across records until another change, the commit or a rollback ends it
 * (then pipeline mode again). A COPY that fails names its seq range; the records up
 * to its last seq are then applied with INSERTs only, so that a retry names the exact
 * change. Under a policy that resolves conflicts COPY is never used (apply.c decides).
 */
#include "apply_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "sqlgen.h"

/* A run of INSERTs into one relation is written with COPY from this many rows on. */
#define S_COPY_MIN_ROWS 8
/* COPY rows are handed to libpq in chunks of about this size. */
#define S_COPY_CHUNK (256u * 1024)

/* The INSERT shape key of a relation of the record being applied. */
struct rt__relkey_t {
    uint64_t seq;               /* record it was computed for (0: none) */
    char key[RT_APPLY_KEY_MAX]; /* rt_sqlgen_shape_key(rel, 'I', 0) */
};

const char *rt__copy_rel_key(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    if (idx >= rec->nrels)
        return NULL;
    if (rec->nrels > self->relkeys_cap) {
        size_t cap = rec->nrels < 16 ? 16 : rec->nrels;
        rt__relkey_t *k = realloc(self->relkeys, cap * sizeof *k);
        if (!k)
            return NULL;
        memset(k, 0, cap * sizeof *k);
        self->relkeys = k;
        self->relkeys_cap = cap;
    }
    rt__relkey_t *k = &self->relkeys[idx];
    if (k->seq != rec->seq) {
        if (rt_sqlgen_shape_key(&rec->rels[idx], 'I', 0, NULL, k->key, sizeof k->key) < 0)
            return NULL;
        k->seq = rec->seq;
    }
    return k->key;
}

bool rt__copy_wanted(const rt_apply_t *self, const rt_record_t *rec, uint32_t i, const char *key)
{
    uint32_t run = strcmp(self->run_key, key) == 0 ? self->run_rows : 0;
    uint32_t rel = rec->changes[i].rel;
    for (uint32_t j = i; j < rec->nchanges && run < S_COPY_MIN_ROWS; j++) {
        if (rec->changes[j].op != 'I' || rec->changes[j].rel != rel)
            break;
        run++;
    }
    return run >= S_COPY_MIN_ROWS;
}

void rt__copy_run_note(rt_apply_t *self, const char *key)
{
    if (!key) {
        self->run_rows = 0;
        return;
    }
    if (self->run_rows > 0 && strcmp(self->run_key, key) == 0) {
        self->run_rows++;
        return;
    }
    snprintf(self->run_key, sizeof self->run_key, "%s", key);
    self->run_rows = 1;
}

/* Writes "seq a" or "seqs a..b" of the open COPY into buf. */
static const char *s_copy_range(const rt_apply_t *self, char *buf, size_t size)
{
    if (self->copy_first == self->copy_last)
        snprintf(buf, size, "seq %" PRIu64, self->copy_first);
    else
        snprintf(buf, size, "seqs %" PRIu64 "..%" PRIu64, self->copy_first, self->copy_last);
    return buf;
}

/* Logs a failed COPY result and classifies it; the records up to its last seq are
 * then applied without COPY, so a retry names the exact change. */
static int s_copy_failure(rt_apply_t *self, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    char line[512], dline[256], range[64];
    int err = RT_EDB;

    if (!state)
        state = "?";
    msg = rt_pg_error_line(msg ? msg : PQresultErrorMessage(res), line, sizeof line);
    rt_pg_error_line(detail ? detail : "", dline, sizeof dline);
    s_copy_range(self, range, sizeof range);
    self->nocopy_until = self->copy_last;
    if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0) {
        err = RT__ETRANSIENT;
        rt__apply_transient(self, "%s: the replica failed the COPY into %s (SQLSTATE %s: %s)",
                            range, self->copy_table, state, msg);
    } else if (strcmp(state, "42P01") == 0) {
        err = RT_ENOTFOUND;
        rt__apply_error(self,
                        "%s: table %s is missing on the replica (INSERT): %s; create it, then the "
                        "subscriber retries",
                        range, self->copy_table, msg);
    } else if (strcmp(state, "42703") == 0) {
        err = RT_ENOTFOUND;
        rt__apply_error(self,
                        "%s: a column of table %s is missing on the replica: %s; add it, then the "
                        "subscriber retries",
                        range, self->copy_table, msg);
    } else if (strcmp(state, "23505") == 0) {
        err = RT_ECONFLICT;
        rt__apply_error(
            self,
            "conflict at %s: the COPY of %" PRIu64 " INSERTs into %s met a row that "
            "already exists on the replica (SQLSTATE %s: %s%s%s); applying stopped "
            "(conflict policy %s); the retry applies these records one INSERT at a time "
            "to name the change",
            range, self->copy_rows, self->copy_table, state, msg, dline[0] ? " " : "", dline,
            rt_conflict_policy_name(self->policy));
    } else {
        rt__apply_error(
            self, "replica error at %s (COPY of %" PRIu64 " INSERTs into %s): SQLSTATE %s: %s%s%s",
            range, self->copy_rows, self->copy_table, state, msg, dline[0] ? " " : "", dline);
    }
    return err;
}

/* Leaves COPY: reads the results up to the end (the first failure classified unless
 * quiet) and enters pipeline mode again. Returns 0, the failure, RT_EIO or RT_EAGAIN. */
static int s_copy_results(rt_apply_t *self, bool quiet)
{
    int err = RT_OK, io = RT_OK;
    bool done = false;

    self->copying = false;
    self->copy_len = 0;
    for (int n = 0; n < 16; n++) {
        PGresult *res = rt__pipeline_next_result(self, &io);
        if (!res) {
            done = io == RT_OK && PQstatus(self->conn) == CONNECTION_OK;
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK) {
            char want[24];
            snprintf(want, sizeof want, "%" PRIu64, self->copy_rows);
            if (err == RT_OK && !quiet && strcmp(PQcmdTuples(res), want) != 0) {
                rt__apply_error(self, "the replica's COPY into %s wrote %s rows instead of %s",
                                self->copy_table, PQcmdTuples(res), want);
                err = RT_EDB;
            }
        } else if (st == PGRES_FATAL_ERROR) {
            if (err == RT_OK)
                err = quiet ? RT_EDB : s_copy_failure(self, res);
        } else {
            /* Still in COPY (or something else entirely): the session is unusable. */
            PQclear(res);
            break;
        }
        PQclear(res);
    }
    if (!done)
        return io != RT_OK ? io : RT_EIO;
    if (PQenterPipelineMode(self->conn) != 1)
        return RT_EIO;
    return quiet ? RT_OK : err;
}

/* Hands the encoded rows to libpq and sends them. Returns 0, RT_EIO, RT_EAGAIN, or the
 * failure the server reported meanwhile (the COPY is then over). */
static int s_copy_put(rt_apply_t *self)
{
    int rc = 0;
    for (int tries = 0; self->copy_len > 0 && tries < 3; tries++) {
        rc = PQputCopyData(self->conn, self->copy_buf, (int)self->copy_len);
        if (rc != 0)
            break;
        int err = rt__pipeline_flush(self); /* nonblocking and full: send, then try again */
        if (err != RT_OK)
            return err;
    }
    if (rc < 0 && PQstatus(self->conn) == CONNECTION_OK) {
        /* The server ended the COPY with an error: collect it. */
        int err = s_copy_results(self, false);
        return err != RT_OK ? err : RT_EDB;
    }
    if (rc <= 0 && self->copy_len > 0)
        return rc == 0 ? RT_ENOMEM : RT_EIO;
    self->copy_len = 0;
    if (self->copy_cap > 4 * S_COPY_CHUNK) {
        /* A huge row made it grow: give the memory back. */
        free(self->copy_buf);
        self->copy_buf = NULL;
        self->copy_cap = 0;
    }
    return rt__pipeline_flush(self);
}

/* Ends the open COPY with PQputCopyEnd(errormsg) (NULL: success, else it fails the
 * COPY), flushing as needed, and reads its result. */
static int s_copy_close(rt_apply_t *self, const char *errormsg)
{
    int err = RT_OK;
    int rc = PQputCopyEnd(self->conn, errormsg);
    if (rc == 0 && (err = rt__pipeline_flush(self)) == RT_OK)
        rc = PQputCopyEnd(self->conn, errormsg);
    if (err != RT_OK)
        return err;
    if (rc < 0 && PQstatus(self->conn) != CONNECTION_OK)
        return RT_EIO;
    if (rc > 0 && (err = rt__pipeline_flush(self)) != RT_OK)
        return err;
    return s_copy_results(self, errormsg != NULL);
}

int rt__copy_end(rt_apply_t *self)
{
    int err = s_copy_put(self);
    if (err != RT_OK || !self->copying)
        return err;
    return s_copy_close(self, NULL);
}

int rt__copy_abort(rt_apply_t *self)
{
    self->copy_len = 0;
    return s_copy_close(self, "rolled back by rt-subscriber");
}

int rt__copy_start(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, const char *key)
{
    const rt_relation_t *rel = &rec->rels[idx];
    char *sql = NULL;
    int err = rt_sqlgen_copy(rel, &sql);
    if (err != RT_OK)
        return err == RT_ENOMEM ? err : RT_EPROTO;
    char *table = rt_sqlgen_qualified(rel->schema, rel->table);
    snprintf(self->copy_table, sizeof self->copy_table, "%s", table ? table : "?");
    free(table);
    snprintf(self->copy_key, sizeof self->copy_key, "%s", key);
    self->copy_first = self->copy_last = rec->seq;
    self->copy_rows = 0;
    self->copy_len = 0;
    self->run_rows = 0;
    if (PQexitPipelineMode(self->conn) != 1) {
        free(sql);
        return RT_EIO;
    }
    int sent = PQsendQuery(self->conn, sql);
    free(sql);
    self->copying = true;
    if (sent != 1)
        return RT_EIO;
    if ((err = rt__pipeline_flush(self)) != RT_OK)
        return err;
    int io = RT_OK;
    PGresult *res = rt__pipeline_next_result(self, &io);
    if (res && PQresultStatus(res) == PGRES_COPY_IN) {
        PQclear(res);
        return RT_OK;
    }
    if (!res)
        return io != RT_OK ? io : RT_EIO;
    /* The COPY did not start (a missing table or column): its error, then the end. */
    err = PQresultStatus(res) == PGRES_FATAL_ERROR ? s_copy_failure(self, res) : RT_EDB;
    PQclear(res);
    int rest = s_copy_results(self, true);
    return rest != RT_OK ? rest : err;
}

int rt__copy_row(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch)
{
    uint32_t ncols = rec->rels[ch->rel].ncols;
    if (!ch->new_ || ch->nnew != ncols)
        return RT_EPROTO;
    size_t need = rt_sqlgen_copy_row_bound(ch->new_, ch->nnew);
    if (self->copy_cap - self->copy_len < need && self->copy_len > 0) {
        int err = s_copy_put(self);
        if (err != RT_OK)
            return err;
        if (!self->copying)
            return RT_EDB;
    }
    if (self->copy_cap - self->copy_len < need) {
        size_t cap = self->copy_cap ? self->copy_cap : S_COPY_CHUNK + 4096;
        while (cap - self->copy_len < need)
            cap *= 2;
        char *buf = realloc(self->copy_buf, cap);
        if (!buf)
            return RT_ENOMEM;
        self->copy_buf = buf;
        self->copy_cap = cap;
    }
    size_t len = 0;
    int err = rt_sqlgen_copy_row(ch->new_, ch->nnew, self->copy_buf + self->copy_len,
                                 self->copy_cap - self->copy_len, &len);
    if (err != RT_OK)
        return RT_EPROTO;
    self->copy_len += len;
    self->copy_rows++;
    self->copy_last = rec->seq;
    if (self->copy_len >= S_COPY_CHUNK)
        return s_copy_put(self);
    return RT_OK;
}
