/* subscriber/apply_side.c - a side session: a streamed source transaction applied while it
 * still runs on the source, committed in place of its records (apply.h, "Streamed
 * transactions"; schemas/protocol.md).
 *
 * The side's writes carry its own origin rt_<source>#stream, so a publisher on the replica
 * leaves them out as it leaves out main's. At the commit the two sessions hand the origin
 * rt_<source> over (a session may bind an origin only while no other does, and may bind
 * another inside its open transaction): main lets go of it, the side binds it, records
 * the transaction's seq and commit time and commits, so that its rows and the origin's
 * progress commit together as main's do; then each binds its own again. */
#include <inttypes.h>
#include <stdio.h>

#include "apply_int.h"
#include "log.h"
#include "pgconn.h"

static const char s_unbind[] = "SELECT pg_catalog.pg_replication_origin_session_reset()";
static const char s_bind[] = "SELECT pg_catalog.pg_replication_origin_session_setup($1)";

void rt_apply_set_side(rt_apply_t *self)
{
    self->side = true;
}

void rt_apply_forget_error(rt_apply_t *self)
{
    self->last_error[0] = '\0';
}

bool rt_apply_plain(const rt_apply_t *self)
{
    return self->policy == RT_CONFLICT_ERROR && self->nskips == 0 && self->nheld == 0 &&
           self->replay_to == 0 && self->remote_until == 0 && self->ddl_skip_seq == 0;
}

/* Sends the queued commands and sql (with its n params) and reads every result. */
static int s_run(rt_apply_t *self, const char *sql, int n, const char *const *params)
{
    int err = rt__pipeline_send(self, RT__OP_MISC, sql, n, params);
    return err == RT_OK ? rt__pipeline_sync(self, NULL) : err;
}

int rt_apply_side_savepoint(rt_apply_t *side, uint32_t subxid, bool rollback)
{
    if (!side->conn)
        return RT_EIO;
    if (rollback && !side->in_txn)
        return RT_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "%sSAVEPOINT rt_s%" PRIu32, rollback ? "ROLLBACK TO " : "", subxid);
    int err = RT_OK;
    side->nops = 0;
    if (side->copying)
        err = rt__copy_end(side);
    if (err == RT_OK && !side->in_txn) {
        if ((err = rt__pipeline_send_fixed(side, RT__OP_BEGIN, "BEGIN", 0, NULL)) == RT_OK) {
            side->in_txn = true;
            side->txn_start_ms = rt_mono_ms();
        }
    }
    if (err == RT_OK)
        err = s_run(side, sql, 0, NULL);
    if (err != RT_OK)
        return rt__apply_outward(side, rt__apply_failed(side, err));
    return RT_OK;
}

/* Has main bind its origin again; its session is dropped (and reconnected by the link)
 * when it cannot. */
static void s_rebind(rt_apply_t *main)
{
    const char *params[1] = {main->origin};
    main->nops = 0;
    int err = s_run(main, s_bind, 1, params);
    if (err != RT_OK) {
        rt__apply_error(main,
                        "the replica %s: cannot bind origin %s again after a streamed "
                        "transaction's commit; reconnecting",
                        main->target, main->origin);
        rt__apply_drop(main);
    }
}

int rt_apply_side_commit(rt_apply_t *side, rt_apply_t *main, const rt_record_t *last, bool mark)
{
    if (!side->conn || !side->in_txn || !main->conn || main->in_txn)
        return RT_EPROTO;
    main->nops = 0;
    int err = s_run(main, s_unbind, 0, NULL);
    if (err != RT_OK)
        return rt__apply_outward(main, rt__apply_failed(main, err));

    char lsn[32], ts[32], seq[24], mlsn[32];
    rt_lsn_format(last->seq, lsn, sizeof lsn);
    snprintf(ts, sizeof ts, "%" PRId64, last->commit_ts);
    snprintf(seq, sizeof seq, "%" PRIu64, last->seq);
    rt_lsn_format(last->commit_lsn, mlsn, sizeof mlsn);
    const char *params[5] = {lsn, ts, main->source, seq, mlsn};
    const char *origin[1] = {main->origin};
    side->nops = 0;
    if ((side->copying && (err = rt__copy_end(side)) != RT_OK) ||
        (err = rt__pipeline_send(side, RT__OP_MISC, s_unbind, 0, NULL)) != RT_OK ||
        (err = rt__pipeline_send(side, RT__OP_MISC, s_bind, 1, origin)) != RT_OK ||
        /* A transaction whose every change was rolled back has no xid yet: it would write
         * no commit record, and the origin would not move. */
        (err = rt__pipeline_send_fixed(side, RT__OP_MISC, "SELECT pg_current_xact_id()", 0,
                                       NULL)) != RT_OK ||
        (err = rt__pipeline_send_fixed(side, RT__OP_MISC,
                                       mark ? rt__origin_setup_marked_sql : rt__origin_setup_sql,
                                       mark ? 5 : 2, params)) != RT_OK ||
        (err = rt__pipeline_send_fixed(side, RT__OP_COMMIT, "COMMIT", 0, NULL)) != RT_OK ||
        (err = rt__pipeline_sync(side, NULL)) != RT_OK) {
        /* The session may hold rt_<source> still: closing it lets go of it. */
        rt__apply_drop(side);
        s_rebind(main);
        return err == RT_EAGAIN ? err : RT_EDB;
    }
    uint64_t changes = side->group_changes;
    rt__apply_reset_txn(side);
    const char *own[1] = {side->origin};
    if ((err = rt__pipeline_send(side, RT__OP_MISC, s_unbind, 0, NULL)) != RT_OK ||
        (err = s_run(side, s_bind, 1, own)) != RT_OK)
        rt__apply_drop(side); /* connected again for the next streamed transaction */
    main->applied_seq = last->seq;
    main->position = last->seq;
    if (mark) {
        main->mark_seq = last->seq;
        main->mark_lsn = last->commit_lsn;
    }
    main->last_commit_ts = last->commit_ts;
    main->last_applied_at = rt_pg_now_us();
    main->applied_txns++;
    main->applied_rows += changes;
    main->last_error[0] = '\0';
    s_rebind(main);
    return RT_OK;
}

int rt_apply_guard(rt_apply_t *main, bool on)
{
    if (!main->conn || main->in_txn || main->guarded == on)
        return RT_OK;
    char sql[64];
    if (on)
        snprintf(sql, sizeof sql, "SET lock_timeout = %d", RT_APPLY_GUARD_MS);
    else
        snprintf(sql, sizeof sql, "RESET lock_timeout");
    main->nops = 0;
    int err = s_run(main, sql, 0, NULL);
    if (err != RT_OK)
        return rt__apply_outward(main, rt__apply_failed(main, err));
    main->guarded = on;
    return RT_OK;
}
