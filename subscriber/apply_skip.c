/* subscriber/apply_skip.c - changes an initial copy holds already (schemas/protocol.md,
 * "Initial copy"): a table copied under a snapshot whose consistent point is L takes a
 * change only from a source transaction whose commit LSN is L or later. A table a resync
 * of chosen tables copies takes nothing until it is copied; then the records the apply
 * passed meanwhile are read again for it alone (a replay, "Resync of chosen tables"). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "log.h"
#include "pgconn.h"

/* Room for a schema or table name in an index key: PostgreSQL's names are at most 63
 * bytes, so no key is cut. */
#define RT_SKIP_NAME_MAX 255

const char *const rt__skip_replayed_sql =
    "UPDATE rt.sync_tables SET replayed = CASE WHEN $2::bigint >= $3::bigint THEN NULL "
    "ELSE $2::bigint END WHERE source = $1 AND replayed IS NOT NULL AND replayed < $2::bigint";

/* The index key of schema.table: unambiguous whatever the names hold. */
static void s_key(char *buf, size_t size, const char *schema, const char *table)
{
    snprintf(buf, size, "%zu:%s.%s", strlen(schema), schema, table);
}

void rt__skip_free(rt_apply_t *self)
{
    zhashx_destroy(&self->skip_index);
    for (size_t i = 0; i < self->nskips; i++) {
        free(self->skips[i].schema);
        free(self->skips[i].table);
    }
    free(self->skips);
    self->skips = NULL;
    self->nskips = 0;
    self->skip_max = 0;
    self->skip_min = 0;
    self->skip_past = 0;
    self->nheld = 0;
    self->replay_to = 0;
    self->replay_from = 0;
}

/* Runs a setup query; NULL (logged, kept as the last error) on failure. */
static PGresult *s_query(rt_apply_t *self, const char *what, const char *sql, int nparams,
                         const char *const *params)
{
    return rt_pg_exec(self->conn, "replica session setup", what, sql, nparams, params,
                      self->last_error, sizeof self->last_error);
}

/* Fills entry s from row r of the listing; false when the row says nothing to do. */
static bool s_entry(rt__skip_t *s, PGresult *res, int r)
{
    s->held = PQgetvalue(res, r, 3)[0] == 'c';
    if (!s->held && (PQgetisnull(res, r, 2) || rt_lsn_parse(PQgetvalue(res, r, 2), &s->lsn)))
        return false;
    if (!s->held && !PQgetisnull(res, r, 4)) {
        s->replay = true;
        s->from = strtoull(PQgetvalue(res, r, 4), NULL, 10);
    }
    return true;
}

/* The origin's progress: how far the apply went (0: none yet). */
static int s_progress(rt_apply_t *self, uint64_t *seq)
{
    const char *p[] = {self->origin};
    PGresult *res = s_query(self, "reading the origin's progress",
                            "SELECT pg_replication_origin_progress($1, true)", 1, p);
    if (!res)
        return RT_EDB;
    *seq = 0;
    if (!PQgetisnull(res, 0, 0) && rt_lsn_parse(PQgetvalue(res, 0, 0), seq) != RT_OK)
        *seq = 0;
    PQclear(res);
    return RT_OK;
}

int rt__skip_load(rt_apply_t *self)
{
    rt__skip_free(self);
    const char *p[] = {self->source};
    PGresult *res = s_query(self, "reading rt.sync_tables",
                            "SELECT to_regclass('rt.sync_tables') IS NOT NULL", 0, NULL);
    if (!res)
        return RT_EDB;
    bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return RT_OK;
    /* A copy of this source that did not finish: its tables are not all there. */
    res = s_query(self, "reading rt.sync_init",
                  "SELECT EXISTS (SELECT 1 FROM rt.sync_init WHERE source = $1)", 1, p);
    if (!res)
        return RT_EDB;
    bool unfinished = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (unfinished) {
        rt__apply_error(self,
                        "the replica's copy from source %s did not finish (rt.sync_init): "
                        "nothing is applied until it is done; start the subscriber again to "
                        "resume it",
                        self->source);
        return RT_EDB;
    }
    /* A replay starting at or after the apply's progress has nothing to read again: the
     * records after it are new to every table. */
    uint64_t progress = 0;
    if (s_progress(self, &progress) != RT_OK)
        return RT_EDB;
    char ptext[24];
    snprintf(ptext, sizeof ptext, "%" PRIu64, progress);
    const char *pp[] = {self->source, ptext};
    if (!(res = s_query(self, "ending replays with nothing to read",
                        "UPDATE rt.sync_tables SET replayed = NULL "
                        "WHERE source = $1 AND replayed >= $2::bigint",
                        2, pp)))
        return RT_EDB;
    PQclear(res);
    res = s_query(self, "reading rt.sync_tables",
                  "SELECT nspname, relname, lsn, state, replayed FROM rt.sync_tables "
                  "WHERE source = $1 AND (state = 'c' OR lsn IS NOT NULL)",
                  1, p);
    if (!res)
        return RT_EDB;
    int n = PQntuples(res);
    int err = RT_OK;
    if (n > 0 && !(self->skips = calloc((size_t)n, sizeof *self->skips)))
        err = RT_ENOMEM;
    bool replay = false;
    for (int r = 0; r < n && err == RT_OK; r++) {
        rt__skip_t *s = &self->skips[self->nskips];
        *s = (rt__skip_t){0};
        if (!s_entry(s, res, r))
            continue;
        if (!(s->schema = strdup(PQgetvalue(res, r, 0))) ||
            !(s->table = strdup(PQgetvalue(res, r, 1)))) {
            free(s->schema);
            err = RT_ENOMEM;
            break;
        }
        if (!s->held && s->lsn > self->skip_max)
            self->skip_max = s->lsn;
        if (!s->held && (!self->skip_min || s->lsn < self->skip_min))
            self->skip_min = s->lsn;
        self->nheld += s->held;
        if (s->replay && (!replay || s->from < self->replay_from))
            self->replay_from = s->from;
        replay |= s->replay;
        self->nskips++;
    }
    PQclear(res);
    /* Looked up once per relation of each record: a copy may have thousands of tables. */
    if (err == RT_OK && self->nskips && !(self->skip_index = zhashx_new()))
        err = RT_ENOMEM;
    for (size_t i = 0; i < self->nskips && err == RT_OK; i++) {
        char key[2 * RT_SKIP_NAME_MAX + 32];
        s_key(key, sizeof key, self->skips[i].schema, self->skips[i].table);
        (void)zhashx_insert(self->skip_index, key, &self->skips[i]); /* one row per table */
    }
    /* A replay covers every record up to the origin's progress: the apply applied them
     * to the other tables already. */
    if (replay)
        self->replay_to = progress;
    if (err != RT_OK)
        rt__skip_free(self);
    else if (self->replay_to)
        rt_info("tables resynced while the others streamed take the records from seq %" PRIu64
                " to %" PRIu64 " again (a replay for them only)",
                self->replay_from + 1, self->replay_to);
    else if (self->nskips)
        rt_debug("%zu tables of a copy take changes only from their snapshot on (%zu held while "
                 "a resync copies them)",
                 self->nskips, self->nheld);
    return err;
}

/* True when relation rel's changes in rec are not applied: they are in its copy, it is
 * held, or rec is a replay that is not for it. */
static bool s_held(const rt_apply_t *self, const rt_relation_t *rel, const rt_record_t *rec)
{
    char key[2 * RT_SKIP_NAME_MAX + 32];
    s_key(key, sizeof key, rel->schema, rel->table);
    const rt__skip_t *e = zhashx_lookup(self->skip_index, key);
    if (self->replay_to && rec->seq <= self->replay_to) {
        if (!e || e->held || !e->replay || rec->seq <= e->from)
            return true;
        return rec->commit_lsn < e->lsn;
    }
    if (!e)
        return false;
    return e->held || rec->commit_lsn < e->lsn;
}

static int s_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return RT_OK;
    void *p = realloc(*arr, need * elem);
    if (!p)
        return RT_ENOMEM;
    *arr = p;
    *cap = need;
    return RT_OK;
}

const rt_record_t *rt__skip_filter(rt_apply_t *self, const rt_record_t *rec)
{
    if (self->nskips == 0)
        return rec;
    /* Past every point: nothing is skipped. The tables are forgotten only once this is
     * committed: a group rolled back is filtered again. */
    if (!self->replay_to && !self->nheld && rec->commit_lsn >= self->skip_max) {
        if (!self->skip_past)
            self->skip_past = rec->seq;
        return rec;
    }
    size_t ntrunc = 0;
    for (uint32_t i = 0; i < rec->nchanges; i++)
        ntrunc += rec->changes[i].op == 'T' ? rec->changes[i].ntrunc : 0;
    if (s_grow((void **)&self->fchanges, &self->fchanges_cap, rec->nchanges ? rec->nchanges : 1,
               sizeof *self->fchanges) != RT_OK ||
        s_grow((void **)&self->ftrunc, &self->ftrunc_cap, ntrunc ? ntrunc : 1,
               sizeof *self->ftrunc) != RT_OK ||
        s_grow((void **)&self->fheld, &self->fheld_cap, rec->nrels ? rec->nrels : 1,
               sizeof *self->fheld) != RT_OK)
        return NULL;
    /* Once per relation of the record, not once per change. */
    for (uint32_t r = 0; r < rec->nrels; r++)
        self->fheld[r] = s_held(self, &rec->rels[r], rec);
    self->filtered = *rec;
    self->filtered.changes = self->fchanges;
    uint32_t n = 0;
    size_t used = 0;
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
        if (ch->op == 'Q') {
            self->fchanges[n++] = *ch; /* a sequence is no table's: it always moves */
            continue;
        }
        if (ch->op == 'L') {
            /* A schema change is in every copy made after it, and a replay's record was
             * applied, its DDL with it, the first time. */
            if (!(self->replay_to && rec->seq <= self->replay_to) &&
                rec->commit_lsn >= self->skip_min)
                self->fchanges[n++] = *ch;
            continue;
        }
        if (ch->op != 'T') {
            if (ch->rel >= rec->nrels || !self->fheld[ch->rel])
                self->fchanges[n++] = *ch;
            continue;
        }
        rt_change_t t = *ch;
        t.trunc_rels = &self->ftrunc[used];
        t.ntrunc = 0;
        for (uint32_t k = 0; k < ch->ntrunc; k++) {
            uint32_t r = ch->trunc_rels[k];
            if (r >= rec->nrels || !self->fheld[r])
                t.trunc_rels[t.ntrunc++] = r;
        }
        used += t.ntrunc;
        if (t.ntrunc)
            self->fchanges[n++] = t;
    }
    self->filtered.nchanges = n;
    return &self->filtered;
}
