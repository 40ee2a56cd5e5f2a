/* subscriber/apply_versioned.c - applying under keep_local and last_write_wins: each
 * change is decided by the versions it meets.
 *
 * A version is the commit that wrote a row (pg_xact_commit_timestamp_origin of its
 * xmin: the commit time and the replication origin, which rt's apply sets to the
 * source's commit time and rt_<source>), or deleted it: under last_write_wins every
 * table with a primary key has a tombstone table rt.tomb_<oid> (its key columns and the
 * deleting transaction), written by an AFTER DELETE trigger that fires for every
 * session, the application's and rt's alike (ENABLE ALWAYS).
 *
 * A record (after SAVEPOINT rt_record) is applied in two pipeline segments:
 *  1. reads: for each change, the version of the row it touches, locked FOR UPDATE so
 *     that it stays as read until the write, and under last_write_wins the version of
 *     its key's tombstone;
 *  2. writes: each change as rt_conflict_decide says; each conflict recorded in
 *     rt.conflicts with both versions.
 * A key the open transaction wrote already is no conflict (the row is its own). A row
 * a concurrent local transaction wrote between the read and the write makes the write
 * fail: RT_ECONFLICT, and the record is applied again after a rollback.
 */
#include "apply_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conflict.h"
#include "initcopy.h"
#include "log.h"
#include "pgconn.h"
#include "sqlgen.h"

/* Functions of the rt schema for tombstones, created or replaced at connect:
 * rt.tombstone() is the trigger (its argument: the INSERT of OLD's key into the
 * table's tombstone table), rt.tombstones_for(rel) makes a table's tombstone table
 * and trigger when missing and returns the tombstone table's name (a partition's is
 * its root's; NULL for a table without a primary key), rt.tombstones_all() does so for
 * every table of the database outside rt and the system schemas. */
static const char *const s_tombstone_ddl = RT_SCHEMA_DDL_BEGIN
    "CREATE OR REPLACE FUNCTION rt.tombstone() RETURNS trigger LANGUAGE plpgsql AS "
    "$f$BEGIN EXECUTE TG_ARGV[0] USING OLD; RETURN NULL; END$f$; "
    "CREATE OR REPLACE FUNCTION rt.tombstones_for(rel regclass) RETURNS text "
    "LANGUAGE plpgsql AS $f$ "
    "DECLARE root regclass := coalesce(pg_partition_root(rel), rel); "
    "tomb text := 'tomb_' || root::oid; cols text; vals text; "
    "BEGIN "
    "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n), "
    "string_agg(format('($1).%I', a.attname), ', ' ORDER BY k.n) INTO cols, vals "
    "FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, n), pg_attribute a "
    "WHERE i.indrelid = root AND i.indisprimary AND a.attrelid = root AND a.attnum = k.att; "
    "IF cols IS NULL THEN RETURN NULL; END IF; "
    "IF to_regclass('rt.' || quote_ident(tomb)) IS NULL THEN "
    "EXECUTE format('CREATE TABLE rt.%I AS SELECT %s FROM %s WITH NO DATA', tomb, cols, root); "
    "EXECUTE format('ALTER TABLE rt.%I ADD COLUMN rt_xid xid8 NOT NULL "
    "DEFAULT pg_current_xact_id(), ADD PRIMARY KEY (%s)', tomb, cols); "
    "END IF; "
    "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = root "
    "AND tgname = 'rt_tombstone') THEN "
    "EXECUTE format('CREATE TRIGGER rt_tombstone AFTER DELETE ON %s FOR EACH ROW "
    "EXECUTE FUNCTION rt.tombstone(%L)', root, format('INSERT INTO rt.%I (%s) VALUES (%s) "
    "ON CONFLICT (%s) DO UPDATE SET rt_xid = pg_current_xact_id()', tomb, cols, vals, cols)); "
    "EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER rt_tombstone', root); "
    "END IF; "
    "RETURN tomb; "
    "END$f$; "
    "CREATE OR REPLACE FUNCTION rt.tombstones_purge(hours int) RETURNS bigint "
    "LANGUAGE plpgsql AS $f$ "
    "DECLARE t text; n bigint; total bigint := 0; "
    "BEGIN "
    "FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
    "WHERE s.nspname = 'rt' AND c.relname LIKE 'tomb\\_%' AND c.relkind = 'r' LOOP "
    "EXECUTE format('DELETE FROM rt.%I WHERE coalesce(pg_xact_commit_timestamp(rt_xid::xid) "
    "< now() - make_interval(hours => $1), true)', t) USING hours; "
    "GET DIAGNOSTICS n = ROW_COUNT; total := total + n; "
    "END LOOP; "
    "RETURN total; "
    "END$f$; "
    "CREATE OR REPLACE FUNCTION rt.tombstones_all() RETURNS void LANGUAGE sql AS $f$ "
    "SELECT count(rt.tombstones_for(c.oid)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> 'rt' "
    "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' $f$; "
    "END$rt$";

bool rt__versioned_policy(int policy)
{
    return policy == RT_CONFLICT_KEEP_LOCAL || policy == RT_CONFLICT_LWW;
}

/* Runs one setup statement (at most one parameter); the result or NULL (logged). */
static PGresult *s_exec(rt_apply_t *self, const char *what, const char *sql, const char *p1)
{
    const char *params[1] = {p1};
    return rt_pg_exec(self->conn, "replica session setup", what, sql, p1 ? 1 : 0, params,
                      self->last_error, sizeof self->last_error);
}

int rt__versioned_setup(rt_apply_t *self, int policy)
{
    PGresult *res;

    self->versioned_ready = false;
    if (self->tombs)
        zhashx_purge(self->tombs);
    if (!rt__versioned_policy(policy))
        return RT_OK;
    if (!(res = s_exec(self, "track_commit_timestamp", "SHOW track_commit_timestamp", NULL)))
        return RT_EDB;
    bool on = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "on") == 0;
    PQclear(res);
    if (!on) {
        rt__apply_error(self,
                        "conflict policy %s compares the commit times of rows: the replica "
                        "needs track_commit_timestamp = on (postgresql.conf, then a restart)",
                        rt_conflict_policy_name(policy));
        return RT_EDB;
    }
    if (policy == RT_CONFLICT_LWW) {
        if (!(res = s_exec(self, "create the tombstone functions", s_tombstone_ddl, NULL)))
            return RT_EDB;
        PQclear(res);
        if (!(res = s_exec(self, "create the tombstone tables and triggers",
                           "SELECT rt.tombstones_all()", NULL)))
            return RT_EDB;
        PQclear(res);
    }
    self->versioned_ready = true;
    return RT_OK;
}

void rt__versioned_purge(rt_apply_t *self, bool force)
{
    if (!self->conn || self->in_txn || !self->versioned_ready || self->policy != RT_CONFLICT_LWW)
        return;
    int64_t now = rt_mono_ms();
    if (!force && now - self->purged_ms < 3600 * 1000)
        return;
    self->purged_ms = now;
    char hours[16];
    snprintf(hours, sizeof hours, "%d", self->tombstone_hours > 0 ? self->tombstone_hours : 168);
    const char *params[1] = {hours};
    self->nops = 0;
    int err =
        rt__pipeline_send(self, RT__OP_MISC, "SELECT rt.tombstones_purge($1::int)", 1, params);
    if (err == RT_OK)
        err = rt__pipeline_run(self, NULL);
    if (err != RT_OK)
        rt_warn("could not purge the tombstones older than %s hours: %s; they stay until the "
                "next purge",
                hours, rt_strerror(err));
    else
        rt_debug("tombstones older than %s hours purged", hours);
}

void rt__versioned_store(rt_apply_t *self, int32_t slot, const PGresult *res)
{
    if (slot < 0 || (size_t)slot >= self->vreads_cap)
        return;
    rt__vread_t *v = &self->vreads[slot];
    memset(v, 0, sizeof *v);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 || PQnfields(res) < 3)
        return;
    v->present = true;
    if (PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1))
        return; /* in progress (this transaction's) or older than the times kept */
    v->known = true;
    v->ts = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    const char *roname = PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2);
    if (strcmp(PQgetvalue(res, 0, 1), "0") == 0)
        snprintf(v->node, sizeof v->node, "%s", self->node);
    else if (strncmp(roname, "rt_", 3) == 0)
        snprintf(v->node, sizeof v->node, "%s", roname + 3);
    else
        snprintf(v->node, sizeof v->node, "%s", roname);
    v->own = strcmp(roname, self->origin) == 0;
}

void rt__versioned_txn_end(rt_apply_t *self, bool committed)
{
    if (self->vkeys)
        zhashx_purge(self->vkeys);
    /* Tombstone tables made in a transaction rolled back are gone with it. */
    if (!committed && self->tombs)
        zhashx_purge(self->tombs);
}

void rt__versioned_free(rt_apply_t *self)
{
    zhashx_destroy(&self->vkeys);
    zhashx_destroy(&self->tombs);
    free(self->vreads);
    self->vreads = NULL;
    self->vreads_cap = 0;
}

/* Appends the key values of image img (n values) of rel to buf: "len:value" or "N"
 * per key column (every column when rel has none). False when there is no image. */
static bool s_key_put(zchunk_t *buf, const rt_relation_t *rel, const rt_value_t *img, uint32_t n)
{
    if (!img || n != rel->ncols)
        return false;
    bool keyed = false;
    for (uint32_t i = 0; i < rel->ncols; i++)
        keyed = keyed || rel->cols[i].key;
    for (uint32_t i = 0; i < rel->ncols; i++) {
        if (keyed && !rel->cols[i].key)
            continue;
        char head[24];
        const rt_value_t *v = &img[i];
        if (v->kind != RT_VAL_TEXT) {
            zchunk_extend(buf, v->kind == RT_VAL_NULL ? "N" : "U", 1);
            continue;
        }
        int h = snprintf(head, sizeof head, "%" PRIu32 ":", v->len);
        zchunk_extend(buf, head, (size_t)h);
        zchunk_extend(buf, v->data, v->len);
    }
    return true;
}

/* The key string of a row of the relation named qual ("schema"."table") in image img
 * of rel: the name, then the key values (malloc'd), NULL if there is no image or no
 * memory. */
static char *s_key(const char *qual, const rt_relation_t *rel, const rt_value_t *img, uint32_t n)
{
    zchunk_t *buf = zchunk_new(NULL, 64);
    if (!buf)
        return NULL;
    zchunk_extend(buf, qual, strlen(qual));
    zchunk_extend(buf, "|", 1);
    char *key = NULL;
    if (s_key_put(buf, rel, img, n) && (key = malloc(zchunk_size(buf) + 1))) {
        memcpy(key, zchunk_data(buf), zchunk_size(buf));
        key[zchunk_size(buf)] = '\0';
    }
    zchunk_destroy(&buf);
    return key;
}

/* What the open transaction did with a key: written (no conflict, or the remote
 * change won) or lost (the replica's version won: the source transaction's other
 * changes of that row are left out too). */
#define S_KEY_WRITTEN ((void *)1)
#define S_KEY_LOST ((void *)2)

/* The keys change ch touches: *id the row it locates (its old image's identity, or the
 * key of its new one), *moved the new key of an UPDATE that moves the row (else NULL).
 * Both malloc'd; *id NULL when the change has no usable image. */
static void s_change_keys(const char *qual, const rt_relation_t *rel, const rt_change_t *ch,
                          char **id, char **moved)
{
    bool old = ch->op == 'D' || ch->old_kind != 0;
    *id = old ? s_key(qual, rel, ch->old, ch->nold) : s_key(qual, rel, ch->new_, ch->nnew);
    *moved = ch->op == 'U' && ch->old_kind != 0 ? s_key(qual, rel, ch->new_, ch->nnew) : NULL;
}

/* Maps key (when not NULL) to value in keys; an existing entry is kept. */
static int s_keys_add(zhashx_t *keys, const char *key, void *value)
{
    int rc = key ? zhashx_insert(keys, key, value) : 0;
    return rc == 0 || rc == -1 ? RT_OK : RT_ENOMEM;
}

/* The tombstone table of the relation named qual (created when missing; "" for a table without a
 * primary key), cached per connection. NULL after a failure (logged). What apply.c
 * queued (BEGIN, SAVEPOINT) runs in the same segment. */
static const char *s_tomb(rt_apply_t *self, const char *qual, int *err)
{
    char *tomb = zhashx_lookup(self->tombs, qual);
    if (!tomb) {
        const char *params[1] = {qual};
        *err = rt__pipeline_send(self, RT__OP_TEXT, "SELECT rt.tombstones_for($1::regclass)", 1,
                                 params);
        if (*err == RT_OK)
            *err = rt__pipeline_run(self, NULL);
        if (*err == RT_OK &&
            (!(tomb = strdup(self->text)) || zhashx_insert(self->tombs, qual, tomb) != 0)) {
            free(tomb);
            tomb = NULL;
            *err = RT_ENOMEM;
        }
    }
    return tomb;
}

/* The versions of conflict c: local (row or tombstone) and remote. */
static void s_note_versions(rt_apply_t *self, const rt__vread_t *local, const rt_version_t *remote)
{
    rt__conflict_t *c = &self->conflict;
    c->versions = true;
    c->local_known = local && local->known;
    c->local_ts = c->local_known ? local->ts : 0;
    snprintf(c->local_node, sizeof c->local_node, "%s", local ? local->node : "");
    c->remote_ts = remote->ts;
    snprintf(c->remote_node, sizeof c->remote_node, "%s", remote->node);
}

/* Queues the write of change i as its reads say; *lost: the replica's version won. */
static int s_write(rt_apply_t *self, const rt_record_t *rec, uint32_t i, int policy,
                   const char *tomb, bool *lost)
{
    const rt_change_t *ch = &rec->changes[i];
    const rt__vread_t *row = &self->vreads[2 * i];
    const rt__vread_t *tb = &self->vreads[2 * i + 1];
    rt_version_t remote = {.known = true, .ts = rec->commit_ts, .node = self->source};
    bool complete = rt__change_complete(ch);
    char key[300];
    rt__conflict_key(rec, ch, key, sizeof key);
    char *table = rt_sqlgen_qualified(rec->rels[ch->rel].schema, rec->rels[ch->rel].table);
    const char *t = table ? table : "?";
    rt_conflict_kind_t kind;
    const rt__vread_t *local = row;
    int err = RT_OK;

    *lost = false;
    if ((row->present && ch->op != 'I' && (!row->known || row->own)) ||
        (!row->present && ch->op == 'I' && !(tb->present && tb->known))) {
        free(table);
        return rt__pipeline_send_change(self, rec, i); /* no conflict */
    }
    if (row->present)
        kind = ch->op == 'I'   ? RT_CONFLICT_INSERT_EXISTS
               : ch->op == 'U' ? RT_CONFLICT_UPDATE_DIFFERS
                               : RT_CONFLICT_DELETE_DIFFERS;
    else {
        bool deleted = tb->present && tb->known;
        local = deleted ? tb : NULL;
        kind = ch->op == 'I'   ? RT_CONFLICT_INSERT_DELETED
               : ch->op == 'U' ? (deleted ? RT_CONFLICT_UPDATE_DELETED : RT_CONFLICT_UPDATE_MISSING)
                               : RT_CONFLICT_DELETE_MISSING;
    }
    rt_version_t lv = {.known = local && local->known,
                       .ts = local ? local->ts : 0,
                       .node = local ? local->node : ""};
    rt_resolve_t r = rt_conflict_decide(policy, kind, &lv, &remote, complete);
    const char *kname = rt_conflict_kind_name(kind);
    char lver[200] = "no version";
    if (local && local->known)
        snprintf(lver, sizeof lver, "written by %s at %" PRId64,
                 local->node[0] ? local->node : "an unknown node", local->ts);
    const char *how = r == RT_RESOLVE_APPLY  ? "applied the remote change"
                      : r == RT_RESOLVE_SKIP ? "kept the replica's version"
                                             : "stopped";
    rt__conflict_note(self, rec, i, ch->op, kname,
                      "%s of %s %s: the replica's %s is %s, the remote change from %s at %" PRId64
                      "; %s",
                      rt__conflict_op_name(ch->op), t, key[0] ? key : "(no key)",
                      row->present ? "row" : "tombstone", lver, self->source, rec->commit_ts, how);
    s_note_versions(self, local, &remote);
    free(table);
    if (r == RT_RESOLVE_STOP)
        return RT_ECONFLICT;
    if (r == RT_RESOLVE_APPLY) {
        if (kind == RT_CONFLICT_INSERT_EXISTS) {
            rt_change_t upd = {.op = 'U', .rel = ch->rel, .nnew = ch->nnew, .new_ = ch->new_};
            err = rt__pipeline_send_stmt(self, rec, &upd, i, false);
        } else if (kind == RT_CONFLICT_UPDATE_MISSING || kind == RT_CONFLICT_UPDATE_DELETED) {
            rt_change_t ins = {.op = 'I', .rel = ch->rel, .nnew = ch->nnew, .new_ = ch->new_};
            err = rt__pipeline_send_stmt(self, rec, &ins, i, false);
        } else {
            err = rt__pipeline_send_change(self, rec, i);
        }
    } else if (kind == RT_CONFLICT_DELETE_MISSING && tomb && tomb[0] && ch->old_kind == 'K' &&
               (!tb->present || rt_conflict_remote_wins(&lv, &remote))) {
        /* Nothing to delete, but a later change of the key must meet this delete (unless
         * it meets a later one already). */
        err = rt__pipeline_send_version(self, rec, i, 'W', tomb, -1);
    }
    if (err != RT_OK)
        return err;
    *lost = r != RT_RESOLVE_APPLY;
    return rt__conflict_resolved(self, *lost ? "kept_local" : "applied_remote");
}

int rt__versioned_record(rt_apply_t *self, const rt_record_t *rec, int policy)
{
    int err = RT_OK;
    bool lww = policy == RT_CONFLICT_LWW;
    size_t nch = rec->nchanges ? rec->nchanges : 1, nrel = rec->nrels ? rec->nrels : 1;

    self->vrace = false;
    if (!self->versioned_ready) {
        rt__apply_error(self, "the replica session is not set up for conflict policy %s",
                        rt_conflict_policy_name(policy));
        return RT_EDB;
    }
    if (!self->vkeys && !(self->vkeys = zhashx_new()))
        return RT_ENOMEM;
    if (!self->tombs) {
        if (!(self->tombs = zhashx_new()))
            return RT_ENOMEM;
        zhashx_set_destructor(self->tombs, (zhashx_destructor_fn *)zstr_free);
    }
    size_t nreads = 2 * (size_t)rec->nchanges + 2;
    if (rt_reserve((void **)&self->vreads, &self->vreads_cap, nreads, sizeof *self->vreads) < 0)
        return RT_ENOMEM;
    memset(self->vreads, 0, nreads * sizeof *self->vreads);
    /* Per relation: its name and tombstone table. Per change: the keys it touches (made
     * once), the change that decides its key (itself, an earlier one of the record, or
     * UINT32_MAX: decided before the record, see follow) and whether its key lost. */
    char **quals = calloc(nrel, sizeof *quals);
    const char **tombs = calloc(nrel, sizeof *tombs);
    char **ids = calloc(nch, sizeof *ids), **moved = calloc(nch, sizeof *moved);
    uint32_t *first = calloc(nch, sizeof *first);
    void **follow = calloc(nch, sizeof *follow);
    bool *lost = calloc(nch, sizeof *lost);
    zhashx_t *seen = zhashx_new(); /* key -> 1 + the index of the change that decides it */
    if (!quals || !tombs || !ids || !moved || !first || !follow || !lost || !seen) {
        err = RT_ENOMEM;
        goto done;
    }
    for (uint32_t r = 0; err == RT_OK && r < rec->nrels; r++) {
        if (!(quals[r] = rt_sqlgen_qualified(rec->rels[r].schema, rec->rels[r].table)))
            err = RT_ENOMEM;
        else if (lww && !(tombs[r] = s_tomb(self, quals[r], &err)) && err == RT_OK)
            err = RT_ENOMEM;
    }

    /* 1. Reads, for the first change of each key the transaction has not written. */
    for (uint32_t i = 0; err == RT_OK && i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        first[i] = i;
        if (ch->op == 'T' || ch->rel >= rec->nrels)
            continue;
        const rt_relation_t *rel = &rec->rels[ch->rel];
        s_change_keys(quals[ch->rel], rel, ch, &ids[i], &moved[i]);
        if (ids[i] && (follow[i] = zhashx_lookup(self->vkeys, ids[i]))) {
            first[i] = UINT32_MAX;
            continue;
        }
        void *j = ids[i] ? zhashx_lookup(seen, ids[i]) : NULL;
        if (j) {
            first[i] = (uint32_t)((uintptr_t)j - 1);
            continue;
        }
        void *me = (void *)((uintptr_t)i + 1);
        if ((err = s_keys_add(seen, ids[i], me)) != RT_OK ||
            (err = s_keys_add(seen, moved[i], me)) != RT_OK)
            break;
        bool keyed = false;
        for (uint32_t k = 0; k < rel->ncols; k++)
            keyed = keyed || rel->cols[k].key;
        if (!keyed && ch->old_kind != 'O') {
            follow[i] = S_KEY_WRITTEN; /* no identity to read by: applied as it comes */
            first[i] = UINT32_MAX;
            continue;
        }
        err = rt__pipeline_send_version(self, rec, i, 'R', NULL, (int32_t)(2 * i));
        if (err == RT_OK && lww && tombs[ch->rel][0] && keyed && ch->old_kind != 'O')
            err =
                rt__pipeline_send_version(self, rec, i, 'S', tombs[ch->rel], (int32_t)(2 * i + 1));
    }
    if (err == RT_OK && self->nops > 0)
        err = rt__pipeline_run(self, rec);

    /* 2. Writes: a key's first change as its reads say, the others as it went. A write
     * that meets a conflict all the same met a row a concurrent transaction wrote after
     * the read: a race, and the record is read again. */
    for (uint32_t i = 0; err == RT_OK && i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        if (ch->op == 'T') {
            err = rt__pipeline_send_change(self, rec, i);
            continue;
        }
        if (first[i] == i) {
            err = s_write(self, rec, i, policy, ch->rel < rec->nrels ? tombs[ch->rel] : NULL,
                          &lost[i]);
            continue;
        }
        lost[i] = first[i] == UINT32_MAX ? follow[i] == S_KEY_LOST : lost[first[i]];
        if (!lost[i])
            err = rt__pipeline_send_change(self, rec, i);
    }
    if (err == RT_OK && self->nops > 0) {
        err = rt__pipeline_run(self, rec);
        self->vrace = err == RT_ECONFLICT;
    }
    /* The keys this record decided, for the transaction's next records. */
    for (uint32_t i = 0; err == RT_OK && i < rec->nchanges; i++) {
        void *v = lost[i] ? S_KEY_LOST : S_KEY_WRITTEN;
        if (first[i] == i && rec->changes[i].op != 'T' &&
            (err = s_keys_add(self->vkeys, ids[i], v)) == RT_OK)
            err = s_keys_add(self->vkeys, moved[i], v);
    }
done:
    zhashx_destroy(&seen);
    for (uint32_t r = 0; quals && r < rec->nrels; r++)
        free(quals[r]);
    for (uint32_t i = 0; ids && moved && i < rec->nchanges; i++) {
        free(ids[i]);
        free(moved[i]);
    }
    free(quals);
    free(tombs);
    free(ids);
    free(moved);
    free(first);
    free(follow);
    free(lost);
    return err;
}
