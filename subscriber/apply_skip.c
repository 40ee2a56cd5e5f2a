/* subscriber/apply_skip.c - changes an initial copy holds already (schemas/protocol.md,
 * "Initial copy"): a table copied under a snapshot whose consistent point is L takes a
 * change only from a source transaction whose commit LSN is L or later. */
#include <stdlib.h>
#include <string.h>

#include "apply_int.h"
#include "log.h"
#include "pgconn.h"

void rt__skip_free(rt_apply_t *self)
{
    for (size_t i = 0; i < self->nskips; i++) {
        free(self->skips[i].schema);
        free(self->skips[i].table);
    }
    free(self->skips);
    self->skips = NULL;
    self->nskips = 0;
    self->skip_max = 0;
}

int rt__skip_load(rt_apply_t *self)
{
    rt__skip_free(self);
    const char *p[] = {self->source};
    PGresult *res = rt_pg_exec(self->conn, "replica session setup", "reading rt.sync_tables",
                               "SELECT to_regclass('rt.sync_tables') IS NOT NULL", 0, NULL,
                               self->last_error, sizeof self->last_error);
    if (!res)
        return RT_EDB;
    bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return RT_OK;
    /* A copy of this source that did not finish: its tables are not all there. */
    res = rt_pg_exec(self->conn, "replica session setup", "reading rt.sync_init",
                     "SELECT EXISTS (SELECT 1 FROM rt.sync_init WHERE source = $1)", 1, p,
                     self->last_error, sizeof self->last_error);
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
    res = rt_pg_exec(self->conn, "replica session setup", "reading rt.sync_tables",
                     "SELECT nspname, relname, lsn FROM rt.sync_tables "
                     "WHERE source = $1 AND state = 'r' AND lsn IS NOT NULL",
                     1, p, self->last_error, sizeof self->last_error);
    if (!res)
        return RT_EDB;
    int n = PQntuples(res);
    int err = RT_OK;
    if (n > 0 && !(self->skips = calloc((size_t)n, sizeof *self->skips)))
        err = RT_ENOMEM;
    for (int r = 0; r < n && err == RT_OK; r++) {
        rt__skip_t *s = &self->skips[self->nskips];
        if (rt_lsn_parse(PQgetvalue(res, r, 2), &s->lsn) != RT_OK)
            continue;
        if (!(s->schema = strdup(PQgetvalue(res, r, 0))) ||
            !(s->table = strdup(PQgetvalue(res, r, 1)))) {
            free(s->schema);
            err = RT_ENOMEM;
            break;
        }
        if (s->lsn > self->skip_max)
            self->skip_max = s->lsn;
        self->nskips++;
    }
    PQclear(res);
    if (err != RT_OK)
        rt__skip_free(self);
    else if (self->nskips)
        rt_debug("%zu tables of an initial copy take changes only from their snapshot on",
                 self->nskips);
    return err;
}

/* True when relation rel's rows committed at commit_lsn are in its copy. */
static bool s_held(const rt_apply_t *self, const rt_relation_t *rel, rt_lsn_t commit_lsn)
{
    for (size_t i = 0; i < self->nskips; i++)
        if (commit_lsn < self->skips[i].lsn && strcmp(self->skips[i].table, rel->table) == 0 &&
            strcmp(self->skips[i].schema, rel->schema) == 0)
            return true;
    return false;
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
    if (rec->commit_lsn >= self->skip_max) {
        rt_debug("the stream is past the initial copy's snapshots: every change applies now");
        rt__skip_free(self);
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
        self->fheld[r] = s_held(self, &rec->rels[r], rec->commit_lsn);
    self->filtered = *rec;
    self->filtered.changes = self->fchanges;
    uint32_t n = 0;
    size_t used = 0;
    for (uint32_t i = 0; i < rec->nchanges; i++) {
        const rt_change_t *ch = &rec->changes[i];
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
