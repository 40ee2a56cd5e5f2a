/* subscriber/apply_ddl.c - schema changes (DDL changes of records) in the replica
 * transaction, in their place among the rows (schemas/wire.md, "Schema changes").
 *
 * A command runs with the source session's search_path, set for the transaction and put
 * back right after, as an extended-protocol statement: a query string of several
 * statements is refused by the replica (SQLSTATE 42601) rather than run whole, since the
 * rows its other statements wrote arrive as rows. Afterwards every prepared statement is
 * dropped: a changed table needs its statements planned again. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apply_int.h"
#include "log.h"

void rt_apply_set_ddl(rt_apply_t *self, bool skip)
{
    self->ddl_skip = skip;
}

void rt_apply_skip_ddl(rt_apply_t *self, uint64_t seq)
{
    if (seq <= self->applied_seq) {
        rt_warn("rtctl skip: seq %" PRIu64 " is applied already (applied seq %" PRIu64
                "): nothing to step over",
                seq, self->applied_seq);
        return;
    }
    self->ddl_skip_seq = seq;
    rt_info("rtctl skip: the DDL of seq %" PRIu64 " will be left out, its rows applied", seq);
}

/* Skips blanks and comments (-- to the end of the line, and nested C-style ones). */
static const char *s_skip(const char *p)
{
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            int depth = 0;
            do {
                if (p[0] == '/' && p[1] == '*')
                    depth++, p += 2;
                else if (p[0] == '*' && p[1] == '/')
                    depth--, p += 2;
                else if (*p)
                    p++;
                else
                    return p; /* unterminated */
            } while (depth > 0);
        } else {
            return p;
        }
    }
}

/* The keyword at p (after blanks and comments) when it is word: the position after it;
 * else NULL. */
static const char *s_word(const char *p, const char *word)
{
    p = s_skip(p);
    size_t n = strlen(word);
    if (strncasecmp(p, word, n) != 0 || isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '$')
        return NULL;
    return p + n;
}

char *rt__ddl_without_concurrently(const char *command)
{
    const char *p = s_word(command, "CREATE");
    if (p) {
        const char *u = s_word(p, "UNIQUE");
        p = s_word(u ? u : p, "INDEX");
    } else if ((p = s_word(command, "DROP"))) {
        p = s_word(p, "INDEX");
    }
    const char *after = p ? s_word(p, "CONCURRENTLY") : NULL;
    if (!after)
        return NULL;
    size_t head = (size_t)(s_skip(p) - command);
    char *out = malloc(head + strlen(after) + 1);
    if (out)
        sprintf(out, "%.*s%s", (int)head, command, after);
    return out;
}

/* The first line of a command, at most about 160 bytes, for messages. */
static const char *s_brief(const char *command, char *buf, size_t size)
{
    size_t n = strcspn(command, "\n");
    if (n > 160)
        n = 160;
    snprintf(buf, size, "%.*s%s", (int)n, command, command[n] ? " ..." : "");
    return buf;
}

int rt__ddl_apply(rt_apply_t *self, const rt_record_t *rec, uint32_t idx)
{
    const rt_ddl_t *d = rec->changes[idx].ddl;
    char brief[200];
    int err;

    if (self->ddl_skip) {
        if (self->ddl_skipped != rec->seq)
            rt_info("seq %" PRIu64 ": %s left out (--ddl skip): %s", rec->seq, d->tag,
                    s_brief(d->command, brief, sizeof brief));
        self->ddl_skipped = rec->seq;
        return RT_OK;
    }
    if (rec->seq == self->ddl_skip_seq) {
        rt_warn("seq %" PRIu64 ": %s stepped over (rtctl skip): %s", rec->seq, d->tag,
                s_brief(d->command, brief, sizeof brief));
        char seq[24];
        snprintf(seq, sizeof seq, "%" PRIu64, rec->seq);
        const char *p[] = {self->source, seq, d->objects, d->command};
        return rt__pipeline_send(self, RT__OP_MISC,
                                 "INSERT INTO rt.conflicts (source, seq, relation, op, kind, "
                                 "resolution, detail) VALUES ($1, $2, $3, 'DDL', 'ddl_skipped', "
                                 "'skipped (rtctl skip)', $4)",
                                 4, p);
    }
    if (d->flags & RT_DDL_PROTECTED) {
        rt__apply_error(self,
                        "seq %" PRIu64 ": %s changes a schema rt never changes on a replica "
                        "(rt, pg_*, information_schema): %s; refused",
                        rec->seq, d->tag, d->objects);
        return RT_EPROTO;
    }
    if (d->flags & RT_DDL_NESTED) {
        rt__apply_error(self,
                        "seq %" PRIu64 ": %s ran inside a function or DO block on the source "
                        "(the client's statement: %s), so its text is not known: make the "
                        "same change (%s) on this replica yourself, then step over it with "
                        "rtctl skip %s --seq %" PRIu64,
                        rec->seq, d->tag, s_brief(d->command, brief, sizeof brief), d->objects,
                        self->node, rec->seq);
        return RT_EPROTO;
    }
    /* Everything before it runs first: the statements it makes stale are in flight. */
    if (self->nops > 0 && (err = rt__pipeline_sync(self, rec)) != RT_OK)
        return err;
    /* CONCURRENTLY cannot run in a transaction: the replica builds or drops the index in
     * its transaction, in the rows' order, as a plain CREATE or DROP INDEX. */
    char *plain = rt__ddl_without_concurrently(d->command);
    static const char set_path[] = "SELECT pg_catalog.set_config('search_path', $1, true)";
    const char *source_path[] = {d->search_path};
    const char *own_path[] = {self->search_path};
    if ((err = rt__pipeline_send(self, RT__OP_MISC, set_path, 1, source_path)) != RT_OK ||
        (err = rt__pipeline_send_for(self, RT__OP_DDL, idx, plain ? plain : d->command, 0, NULL)) !=
            RT_OK ||
        (err = rt__pipeline_send(self, RT__OP_MISC, set_path, 1, own_path)) != RT_OK ||
        (err = rt__pipeline_send(self, RT__OP_MISC, "DEALLOCATE ALL", 0, NULL)) != RT_OK) {
        free(plain);
        return err;
    }
    free(plain);
    err = rt__pipeline_sync(self, rec);
    /* The server forgot them (or the transaction failed before DEALLOCATE, and they are
     * prepared again under new names). */
    zhashx_purge(self->cache);
    if (err != RT_OK)
        return err;
    rt_info("seq %" PRIu64 ": %s applied: %s", rec->seq, d->tag,
            s_brief(d->command, brief, sizeof brief));
    self->group_ddl++;
    return RT_OK;
}

void rt__ddl_failure(rt_apply_t *self, const rt_record_t *rec, uint32_t idx, const char *state,
                     const char *msg)
{
    const rt_ddl_t *d = rec->changes[idx].ddl;
    char brief[200];
    const char *how = strcmp(state, "42601") == 0
                          ? "a query string of several statements is not replayed: run them on "
                            "this replica yourself, then step over it with"
                      : strcmp(state, "25001") == 0
                          ? "a command that cannot run in a transaction is not replayed (of "
                            "those with CONCURRENTLY, only CREATE and DROP INDEX are, without "
                            "it): run it on this replica yourself, then step over it with"
                          : "fix the replica and the subscriber retries, or make the change "
                            "yourself and step over it with";
    rt__apply_error(self,
                    "seq %" PRIu64 ": %s failed on the replica: SQLSTATE %s: %s (%s); %s rtctl "
                    "skip %s --seq %" PRIu64,
                    rec->seq, d->tag, state, msg, s_brief(d->command, brief, sizeof brief), how,
                    self->node, rec->seq);
}
