/* subscriber/apply_pipeline.c - the applier's pipeline queue and prepared-statement cache.
 *
 * Each record is one pipeline segment on an explicitly open transaction:
 *   [BEGIN] (Parse rt_<n>)? Bind/Execute per change ... Sync
 * Every command queued is noted (rt__op_t) so that its result can be read in order
 * and checked after the Sync: an UPDATE or DELETE must touch exactly one row, a
 * duplicate key is a conflict; a probe's row count or duplicate key is an answer.
 * A change shape (relation, operation, columns sent) is prepared once per connection
 * as rt_<n> and kept in a cache keyed by rt_sqlgen_shape_key, and so is each of the
 * applier's own fixed statements (BEGIN, COMMIT, the origin's progress), keyed by its
 * text: the replica parses and plans them once, not once per transaction. The connection is
 * non-blocking while sending so that a large segment never deadlocks against the
 * results.
 */
#include "apply_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "sqlgen.h"

/* A prepared statement of one change shape. */
typedef struct {
    char name[24];  /* "rt_<n>" */
    rt_stmt_t stmt; /* SQL text and parameter map */
    bool prepared;  /* the server has it (or a Parse for it is in flight) */
} s_cached_t;

/* A queued pipeline command. */
struct rt__op_t {
    uint8_t kind;       /* rt__op_kind_t */
    uint32_t change;    /* RT__OP_PREPARE / RT__OP_EXEC: index of the change */
    s_cached_t *cached; /* the Parse of a cached statement: its entry */
    char op;            /* RT__OP_EXEC: the statement's operation (a stand-in's may differ) */
    bool probe;         /* RT__OP_EXEC: a row count or a duplicate key is an answer, not an error */
    bool checked;       /* RT__OP_EXEC: an UPDATE or DELETE that fails unless it touched one row */
    int32_t slot;       /* RT__OP_EXEC: a version read's slot (rt__versioned_store), or -1 */
};

static void s_cached_destroy(void **item)
{
    s_cached_t *c = *item;
    if (c) {
        rt_stmt_clear(&c->stmt);
        free(c);
        *item = NULL;
    }
}

zhashx_t *rt__pipeline_cache_new(void)
{
    zhashx_t *cache = zhashx_new();
    if (cache)
        zhashx_set_destructor(cache, s_cached_destroy);
    return cache;
}

static int s_push_op(rt_apply_t *self, rt__op_kind_t kind, uint32_t change, s_cached_t *cached)
{
    if (rt_reserve((void **)&self->ops, &self->ops_cap, self->nops + 1, sizeof *self->ops) < 0)
        return RT_ENOMEM;
    self->ops[self->nops++] =
        (rt__op_t){.kind = (uint8_t)kind, .change = change, .cached = cached, .slot = -1};
    return RT_OK;
}

int rt__pipeline_flush(rt_apply_t *self)
{
    for (;;) {
        int rc = PQflush(self->conn);
        if (rc == 0)
            return RT_OK;
        if (rc < 0)
            return RT_EIO;
        if (rt__apply_stopping(self))
            return RT_EAGAIN;
        struct pollfd p = {.fd = PQsocket(self->conn), .events = POLLIN | POLLOUT};
        if (poll(&p, 1, RT_APPLY_WAIT_STEP_MS) < 0 && errno != EINTR)
            return RT_EIO;
        if ((p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(self->conn))
            return RT_EIO;
    }
}

PGresult *rt__pipeline_next_result(rt_apply_t *self, int *err)
{
    while (PQisBusy(self->conn)) {
        int rc = rt_pg_wait_fd(PQsocket(self->conn), POLLIN, 0, self->stop);
        if (rc != 0) {
            *err = rc;
            return NULL;
        }
        if (!PQconsumeInput(self->conn))
            break; /* PQgetResult reports the failure */
    }
    return PQgetResult(self->conn);
}

/* Logs a failed result for the change at op (if any) of record seq and classifies it. */
static int s_failure(rt_apply_t *self, const rt_record_t *rec, const rt__op_t *op,
                     const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char *table = NULL;
    const char *opname = "statement";
    uint64_t seq = rec ? rec->seq : self->group_seq;
    int err = RT_EDB;

    if (!state)
        state = "?";
    char line[512];
    msg = rt_pg_error_line(msg ? msg : PQresultErrorMessage(res), line, sizeof line);
    char chop = 0;
    if (rec && op && op->kind == RT__OP_DDL && op->change < rec->nchanges) {
        rt__ddl_failure(self, rec, op->change, state, msg);
        return RT_EDB;
    }
    if (rec && op && (op->kind == RT__OP_EXEC || op->kind == RT__OP_PREPARE)) {
        const rt_change_t *ch = &rec->changes[op->change];
        chop = op->op ? op->op : ch->op;
        opname = chop == 'R'   ? "read of the row"
                 : chop == 'S' ? "read of the tombstone"
                 : chop == 'W' ? "write of the tombstone"
                               : rt__conflict_op_name(chop);
        if (ch->op != 'T')
            table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    } else if (rec && op && rt_record_is_sequences(rec) && op->change < rec->nchanges) {
        const rt_change_t *ch = &rec->changes[op->change];
        table = rt_sqlgen_qualified(ch->seq_schema, ch->seq_name);
        rt__apply_error(self,
                        "replica error at seq %" PRIu64 " moving sequence %s forward: "
                        "SQLSTATE %s: %s",
                        seq, table ? table : "?", state, msg);
        free(table);
        return RT_EDB;
    }
    if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0) {
        /* Not logged as an error: applied again, and logged so when it cannot be. */
        rt__apply_transient(self,
                            "seq %" PRIu64 ": the replica failed the %s%s%s (SQLSTATE %s: %s)", seq,
                            opname, table ? " of " : "", table ? table : "", state, msg);
        err = RT__ETRANSIENT;
    } else if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0) {
        err = RT_ENOTFOUND;
        if (strcmp(state, "42P01") == 0)
            rt__apply_error(self,
                            "seq %" PRIu64 ": table %s is missing on the replica (%s): %s; "
                            "create it, then the subscriber retries",
                            seq, table ? table : "?", opname, msg);
        else
            rt__apply_error(self,
                            "seq %" PRIu64 ": a column of table %s is missing on the replica: %s; "
                            "add it, then the subscriber retries",
                            seq, table ? table : "?", msg);
    } else if (strcmp(state, "428C9") == 0 && chop == 'U') {
        /* A key the replica made GENERATED ALWAYS AS IDENTITY: no UPDATE may set it. */
        rt__apply_error(self,
                        "seq %" PRIu64 ": UPDATE of %s changes a column the replica made "
                        "GENERATED ALWAYS AS IDENTITY, which no UPDATE may set (%s); make it "
                        "GENERATED BY DEFAULT on the replica (ALTER TABLE ... ALTER COLUMN ... "
                        "SET GENERATED BY DEFAULT), then the subscriber retries",
                        seq, table ? table : "?", msg);
    } else if (strcmp(state, "23505") == 0 && chop && chop != 'T') {
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        char dline[256];
        rt_pg_error_line(detail ? detail : "", dline, sizeof dline);
        err = RT_ECONFLICT;
        rt__conflict_note(self, rec, op->change, chop,
                          chop == 'I' ? "insert_exists" : "update_exists",
                          "%s into %s: the row already exists on the replica (SQLSTATE %s: %s%s%s)",
                          opname, table ? table : "?", state, msg, dline[0] ? " " : "", dline);
    } else {
        rt__apply_error(self, "replica error at seq %" PRIu64 " (%s%s%s): SQLSTATE %s: %s", seq,
                        opname, table ? " of " : "", table ? table : "", state, msg);
    }
    free(table);
    return err;
}

/* Reads the results of the queued commands and the Sync. Returns 0 or the first
 * failure (logged); on RT_EIO/RT_EAGAIN the connection is unusable. */
static int s_read_results(rt_apply_t *self, const rt_record_t *rec)
{
    int err = RT_OK, io = RT_OK;

    for (size_t i = 0; i < self->nops; i++) {
        const rt__op_t *op = &self->ops[i];
        PGresult *res = rt__pipeline_next_result(self, &io);
        if (!res) {
            if (io == RT_OK)
                io = RT_EIO;
            goto broken;
        }
        ExecStatusType st = PQresultStatus(res);
        const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (st == PGRES_FATAL_ERROR && op->checked && sqlstate && strcmp(sqlstate, "22012") == 0) {
            /* Not one row (or a division by zero of the replica's own): the caller
             * applies the record again, reading the row count before its commit. */
            if (err == RT_OK)
                err = RT__ERECHECK;
        } else if (st == PGRES_FATAL_ERROR && op->probe && sqlstate &&
                   strcmp(sqlstate, "23505") == 0) {
            const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
            self->probe_rows = -1;
            rt_pg_error_line(detail ? detail : PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                             self->probe_detail, sizeof self->probe_detail);
        } else if (st == PGRES_FATAL_ERROR) {
            if (op->cached)
                op->cached->prepared = false;
            if (err == RT_OK)
                err = s_failure(self, rec, op, res);
        } else if (st == PGRES_PIPELINE_ABORTED) {
            if (op->cached)
                op->cached->prepared = false;
        } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            if (err == RT_OK) {
                rt__apply_error(self, "replica returned %s unexpectedly", PQresStatus(st));
                err = RT_EDB;
            }
        } else if (err == RT_OK && op->kind == RT__OP_SEQUENCE && rec &&
                   op->change < rec->nchanges) {
            bool has = PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0);
            rt__sequence_result(self, rec, op->change, has ? PQgetvalue(res, 0, 0) : "");
        } else if (err == RT_OK && op->kind == RT__OP_TEXT) {
            bool has = PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0);
            snprintf(self->text, sizeof self->text, "%s", has ? PQgetvalue(res, 0, 0) : "");
        } else if (err == RT_OK && op->kind == RT__OP_EXEC && op->slot >= 0) {
            rt__versioned_store(self, op->slot, res);
        } else if (err == RT_OK && op->kind == RT__OP_EXEC && op->probe) {
            self->probe_rows = strtoll(PQcmdTuples(res), NULL, 10);
        } else if (err == RT_OK && op->kind == RT__OP_EXEC && !op->checked) {
            const rt_change_t *ch = &rec->changes[op->change];
            const char *n = PQcmdTuples(res);
            if ((op->op == 'U' || op->op == 'D') && strcmp(n, "1") != 0) {
                char key[300];
                bool missing = strcmp(n, "0") == 0;
                char *table =
                    rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
                rt__conflict_key(rec, ch, key, sizeof key);
                rt__conflict_note(self, rec, op->change, op->op,
                                  op->op == 'U' ? (missing ? "update_missing" : "update_multiple")
                                                : (missing ? "delete_missing" : "delete_multiple"),
                                  "%s of %s matched %s rows on the replica instead of 1 (%s)%s%s",
                                  rt__conflict_op_name(op->op), table ? table : "?", n,
                                  missing ? "the row is missing" : "the identity is not unique",
                                  key[0] ? ": key " : "", key);
                free(table);
                err = RT_ECONFLICT;
            }
        } else if (err == RT_OK && op->kind == RT__OP_COMMIT) {
            if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
                rt__apply_error(self, "replica did not commit at seq %" PRIu64 " (%s)",
                                self->group_seq, PQcmdStatus(res));
                err = RT_EDB;
            }
        }
        PQclear(res);
        /* The NULL that ends this command's results (more results are drained). */
        for (int extra = 0;; extra++) {
            res = rt__pipeline_next_result(self, &io);
            if (!res)
                break;
            PQclear(res);
            if (extra > 16) {
                io = RT_EIO;
                goto broken;
            }
        }
        if (io != RT_OK)
            goto broken;
    }
    PGresult *res = rt__pipeline_next_result(self, &io);
    if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        PQclear(res);
        if (io == RT_OK)
            io = RT_EIO;
        goto broken;
    }
    PQclear(res);
    self->nops = 0;
    return err;
broken:
    self->nops = 0;
    return io;
}

int rt__pipeline_sync(rt_apply_t *self, const rt_record_t *rec)
{
    if (PQpipelineSync(self->conn) != 1) {
        self->nops = 0;
        return RT_EIO;
    }
    int err = rt__pipeline_flush(self);
    if (err != RT_OK) {
        self->nops = 0;
        return err;
    }
    return s_read_results(self, rec);
}

int rt__pipeline_send_for(rt_apply_t *self, rt__op_kind_t kind, uint32_t idx, const char *sql,
                          int n, const char *const *params)
{
    if (PQsendQueryParams(self->conn, sql, n, NULL, params, NULL, NULL, 0) != 1)
        return RT_EIO;
    return s_push_op(self, kind, idx, NULL);
}

int rt__pipeline_send(rt_apply_t *self, rt__op_kind_t kind, const char *sql, int n,
                      const char *const *params)
{
    return rt__pipeline_send_for(self, kind, 0, sql, n, params);
}

/* Names c and files it under key in the statement cache. */
static int s_cache_add(rt_apply_t *self, const char *key, s_cached_t *c)
{
    snprintf(c->name, sizeof c->name, "rt_%" PRIu32, self->next_stmt++);
    return zhashx_insert(self->cache, key, c) == 0 ? RT_OK : RT_ENOMEM;
}

/* Queues c's Parse, as an op of kind for change idx, unless this connection has it. */
static int s_prepare_once(rt_apply_t *self, s_cached_t *c, rt__op_kind_t kind, uint32_t idx)
{
    if (c->prepared)
        return RT_OK;
    if (PQsendPrepare(self->conn, c->name, c->stmt.sql, 0, NULL) != 1)
        return RT_EIO;
    int err = s_push_op(self, kind, idx, c);
    if (err == RT_OK)
        c->prepared = true;
    return err;
}

int rt__pipeline_send_fixed(rt_apply_t *self, rt__op_kind_t kind, const char *sql, int n,
                            const char *const *params)
{
    /* Keyed by its text, which no shape key (34 letters and hex digits) can equal. */
    s_cached_t *c = zhashx_lookup(self->cache, sql);
    if (!c) {
        if (!(c = calloc(1, sizeof *c)))
            return RT_ENOMEM;
        if (!(c->stmt.sql = strdup(sql)) || s_cache_add(self, sql, c) != RT_OK) {
            free(c->stmt.sql);
            free(c);
            return RT_ENOMEM;
        }
    }
    /* Not RT__OP_PREPARE: no change of the record is named by its failure. */
    int err = s_prepare_once(self, c, RT__OP_MISC, 0);
    if (err != RT_OK)
        return err;
    if (PQsendQueryPrepared(self->conn, c->name, n, params, NULL, NULL, 0) != 1)
        return RT_EIO;
    return s_push_op(self, kind, 0, NULL);
}

static int s_send_truncate(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    const rt_change_t *ch = &rec->changes[idx];
    char *sql = NULL;
    int err;

    if (ch->ntrunc == 0)
        return RT_OK; /* nothing to do */
    if (ch->ntrunc > self->trels_cap) {
        const rt_relation_t **r = realloc(self->trels, ch->ntrunc * sizeof *r);
        if (!r)
            return RT_ENOMEM;
        self->trels = r;
        self->trels_cap = ch->ntrunc;
    }
    for (uint32_t i = 0; i < ch->ntrunc; i++) {
        if (ch->trunc_rels[i] >= rec->nrels)
            return RT_EPROTO;
        self->trels[i] = &rec->rels[ch->trunc_rels[i]];
    }
    if ((err = rt_sqlgen_truncate(self->trels, ch->ntrunc, ch->trunc_flags, &sql)) != RT_OK)
        return err;
    if (PQsendQueryParams(self->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
        err = RT_EIO;
    else
        err = s_push_op(self, RT__OP_EXEC, idx, NULL);
    free(sql);
    return err;
}

/* Returns the cached statement for the change's shape (what: 0 for the change's own
 * statement, else a version statement of rt_sqlgen_version on tombstone table tomb),
 * creating it (and queueing its Parse) when new or when its last Parse did not
 * succeed. */
static int s_statement(rt_apply_t *self, const rt_relation_t *rel, const rt_change_t *ch,
                       uint32_t idx, char what, const char *tomb, bool checked, s_cached_t **out)
{
    char key[128];
    int err, n;

    if ((n = rt_sqlgen_shape_key(rel, what ? what : ch->op, ch->old_kind, ch->new_, key,
                                 sizeof key - 1)) < 0)
        return RT_EPROTO;
    if (checked) {
        key[n] = 'c';
        key[n + 1] = '\0';
    }
    s_cached_t *c = zhashx_lookup(self->cache, key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return RT_ENOMEM;
        err = what ? rt_sqlgen_version(rel, what, ch->old_kind, tomb, &c->stmt)
                   : rt_sqlgen_change(rel, ch->op, ch->old_kind, ch->new_, &c->stmt);
        if (err == RT_OK && checked)
            err = rt_sqlgen_checked(&c->stmt);
        if (err != RT_OK) {
            free(c);
            return err == RT_ENOMEM ? err : RT_EPROTO;
        }
        if (s_cache_add(self, key, c) != RT_OK) {
            rt_stmt_clear(&c->stmt);
            free(c);
            return RT_ENOMEM;
        }
    }
    if ((err = s_prepare_once(self, c, RT__OP_PREPARE, idx)) != RT_OK)
        return err;
    *out = c;
    return RT_OK;
}

/* Queues statement what (0: the change's own) for change ch of rec. */
static int s_send(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch, uint32_t idx,
                  char what, const char *tomb, bool probe, int32_t slot)
{
    s_cached_t *c;
    int err;

    if (ch->op == 'T' && !what)
        return s_send_truncate(self, rec, idx);
    if (ch->rel >= rec->nrels)
        return RT_EPROTO;
    uint32_t ncols = rec->rels[ch->rel].ncols;
    if ((ch->op != 'D' && (!ch->new_ || ch->nnew != ncols)) ||
        (ch->old_kind && (!ch->old || ch->nold != ncols)))
        return RT_EPROTO;
    /* In a record that commits in the segment of its changes, an UPDATE or DELETE
     * checks its own row count. */
    bool checked = self->one_trip && !what && (ch->op == 'U' || ch->op == 'D');
    if ((err = s_statement(self, &rec->rels[ch->rel], ch, idx, what, tomb, checked, &c)) != RT_OK)
        return err;
    if (c->stmt.nparams > self->params_cap) {
        const char **p = realloc(self->params, c->stmt.nparams * sizeof *p);
        if (!p)
            return RT_ENOMEM;
        self->params = p;
        self->params_cap = c->stmt.nparams;
    }
    for (uint32_t i = 0; i < c->stmt.nparams; i++) {
        const rt_param_t *pm = &c->stmt.params[i];
        const rt_value_t *img = pm->from_old ? ch->old : ch->new_;
        uint32_t n = pm->from_old ? ch->nold : ch->nnew;
        if (!img || pm->col >= n || img[pm->col].kind == RT_VAL_UNCHANGED)
            return RT_EPROTO;
        self->params[i] = img[pm->col].kind == RT_VAL_NULL ? NULL : img[pm->col].data;
    }
    if (PQsendQueryPrepared(self->conn, c->name, (int)c->stmt.nparams, self->params, NULL, NULL,
                            0) != 1)
        return RT_EIO;
    if ((err = s_push_op(self, RT__OP_EXEC, idx, NULL)) != RT_OK)
        return err;
    self->ops[self->nops - 1].op = what ? what : ch->op;
    self->ops[self->nops - 1].probe = probe;
    self->ops[self->nops - 1].slot = slot;
    self->ops[self->nops - 1].checked = checked;
    return RT_OK;
}

int rt__pipeline_send_stmt(rt_apply_t *self, const rt_record_t *rec, const rt_change_t *ch,
                           uint32_t idx, bool probe)
{
    return s_send(self, rec, ch, idx, 0, NULL, probe, -1);
}

int rt__pipeline_send_version(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, char what,
                              const char *tomb, int32_t slot)
{
    return s_send(self, rec, &rec->changes[idx], idx, what, tomb, what == 'W', slot);
}

int rt__pipeline_send_change(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    return rt__pipeline_send_stmt(self, rec, &rec->changes[idx], idx, false);
}

int rt__pipeline_run(rt_apply_t *self, const rt_record_t *rec)
{
    int err = rt__pipeline_flush(self);
    if (err != RT_OK) {
        self->nops = 0;
        return err;
    }
    return rt__pipeline_sync(self, rec);
}
