/* subscriber/apply_sequence.c - a record of sequences: each moved forward, never back.
 *
 * The source's sequences arrive as their last value handed out there (schemas/wire.md,
 * "Sequences"). A replica sequence whose next value would not pass it is set so that it
 * does: by whole steps of its own increment, so that nodes that share out keys by
 * residue (INCREMENT BY 3, START 1, 2, 3) keep their own. A sequence that is ahead
 * already is left alone, so two nodes never push each other on. Nothing is installed on
 * the replica: the values go in as settings of the transaction, a DO block reads the
 * sequence (its last_value and is_called, which only the relation itself has) and sets
 * it, and the last command reads back what the block did. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "log.h"

static const char *const s_set_sql = "SELECT pg_catalog.set_config('rt.seq_schema', $1, true), "
                                     "pg_catalog.set_config('rt.seq_name', $2, true), "
                                     "pg_catalog.set_config('rt.seq_value', $3, true)";

/* k steps of inc past the next value take it beyond the remote value r. */
static const char *const s_move_sql =
    "DO $rt$DECLARE "
    "o oid; inc bigint; lo bigint; hi bigint; cyc bool; last bigint; called bool; "
    "nxt numeric; r numeric := pg_catalog.current_setting('rt.seq_value')::numeric; "
    "res text; "
    "BEGIN "
    "SELECT c.oid, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle INTO o, inc, lo, hi, cyc "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid "
    "WHERE n.nspname = pg_catalog.current_setting('rt.seq_schema') "
    "AND c.relname = pg_catalog.current_setting('rt.seq_name'); "
    "IF o IS NULL THEN res := 'missing'; "
    "ELSIF NOT (pg_catalog.has_sequence_privilege(o, 'SELECT') "
    "AND pg_catalog.has_sequence_privilege(o, 'UPDATE')) THEN res := 'denied'; "
    "ELSIF cyc THEN res := 'cycle'; "
    "ELSE "
    "EXECUTE pg_catalog.format('SELECT last_value, is_called FROM %s', o::pg_catalog.regclass) "
    "INTO last, called; "
    "nxt := CASE WHEN called THEN last + inc ELSE last END; "
    "IF (inc > 0 AND nxt > r) OR (inc < 0 AND nxt < r) THEN res := 'ahead'; "
    "ELSE "
    "nxt := nxt + pg_catalog.floor((r - nxt) / inc) * inc; "
    "PERFORM pg_catalog.setval(o, LEAST(GREATEST(nxt, lo), hi)::bigint, "
    "true); "
    "res := 'moved'; "
    "END IF; "
    "END IF; "
    "PERFORM pg_catalog.set_config('rt.seq_result', res, true); "
    "END$rt$";

static const char *const s_result_sql = "SELECT pg_catalog.current_setting('rt.seq_result')";

int rt__sequence_apply(rt_apply_t *self, const rt_record_t *rec)
{
    int err = RT_OK;
    for (uint32_t i = 0; err == RT_OK && i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        char value[24];
        if (ch->op != 'Q')
            return RT_EPROTO;
        snprintf(value, sizeof value, "%" PRId64, ch->seq_value);
        const char *params[3] = {ch->seq_schema, ch->seq_name, value};
        if ((err = rt__pipeline_send_for(self, RT__OP_MISC, i, s_set_sql, 3, params)) != RT_OK ||
            (err = rt__pipeline_send_for(self, RT__OP_MISC, i, s_move_sql, 0, NULL)) != RT_OK ||
            (err = rt__pipeline_send_for(self, RT__OP_SEQUENCE, i, s_result_sql, 0, NULL)) != RT_OK)
            break;
        err = rt__pipeline_flush(self);
    }
    if (err != RT_OK)
        return err;
    return rt__pipeline_run(self, rec);
}

void rt__sequence_result(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, const char *result)
{
    const rt_change_t *ch = &rec->changes[idx];
    if (strcmp(result, "moved") == 0) {
        self->group_seq_moved++;
        rt_debug("seq %" PRIu64 ": sequence %s.%s moved past %" PRId64, rec->seq, ch->seq_schema,
                 ch->seq_name, ch->seq_value);
        return;
    }
    if (strcmp(result, "ahead") == 0)
        return;
    /* The others say the same every time the source's sequence moves: once each. */
    char key[300];
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", result, ch->seq_schema, ch->seq_name);
    if (!self->seq_warned && !(self->seq_warned = zhashx_new()))
        return;
    if (zhashx_insert(self->seq_warned, key, (void *)1) != 0)
        return; /* told already (or out of memory: then not told) */
    if (strcmp(result, "missing") == 0)
        rt_warn("sequence %s.%s of the source does not exist on the replica: it is not "
                "replicated (create it there to have it moved forward with the source's)",
                ch->seq_schema, ch->seq_name);
    else if (strcmp(result, "denied") == 0)
        rt_warn("sequence %s.%s: the replica's role needs SELECT and UPDATE on it to move it "
                "forward with the source's; it is not replicated",
                ch->seq_schema, ch->seq_name);
    else if (strcmp(result, "cycle") == 0)
        rt_warn("sequence %s.%s cycles (CYCLE): rt does not move it, since forward has no "
                "meaning once it wraps",
                ch->seq_schema, ch->seq_name);
    else
        rt_warn("sequence %s.%s: unexpected result '%s' moving it", ch->seq_schema, ch->seq_name,
                result);
}
