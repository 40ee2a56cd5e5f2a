/* publisher/capture.c - the replication stream: pgoutput in, outbox records out, flush LSN back.
 *
 * CopyData from the walsender (all integers big-endian):
 *   'w' | int64 dataStart | int64 walEnd | int64 sendTime | one pgoutput message
 *   'k' | int64 walEnd | int64 sendTime | uint8 replyRequested
 * and to it:
 *   'r' | int64 write | int64 flush | int64 apply | int64 clientTime | uint8 replyRequested
 *
 * Records are built as the changes arrive and cut at RT_RECORD_TARGET_BYTES, so
 * memory does not grow with transaction size. Each record is handed to opts.publish
 * (PUB) as soon as it is cut, before it is durable. The outbox commit runs on the
 * committer's thread (committer.h; batch.c hands it the batches), one at a time, while
 * the next batch fills: the
 * records cut while one commit ran go into the next LMDB write transaction (group
 * commit). The flush LSN is confirmed only once a commit returned, and only up to the
 * end of the last complete transaction it stored. Reading from the source pauses
 * while the filling batch is at batch_bytes and a commit runs, or the outbox is full.
 *
 * The chunks of a large transaction are published as they are cut and stored (and
 * served to subscribers) by the next commit, before its last chunk. If the stream
 * breaks or the publisher stops before the last chunk is stored, the stored chunks
 * stay (on a break or a stop, every chunk cut is stored first): the source sends the
 * transaction again (its commit is not confirmed), the changes already stored are
 * skipped, and the next chunk continues at the next seq. Chunks are therefore never
 * rewritten; only if the source sends another transaction in its place (its slot was
 * recreated) are they discarded, and subscribers, which never commit a partial
 * transaction, see the change of commit LSN and start that transaction over.
 *
 * The stream is pgoutput protocol 2 with streaming on: transactions streamed before their
 * commit are spooled by spool.c and, at their commit, come back through the same
 * handlers as a transaction sent after its commit (rt_capture_on_*); before it, blocks.c
 * publishes their changes as blocks, with the change builder below. */
#include "capture.h"

#include <assert.h>
#include <czmq.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "capture_int.h"
#include "committer.h"
#include "log.h"
#include "pgconn.h"
#include "pgoutput.h"
#include "wire.h"

#define FEEDBACK_INTERVAL_MS 5000
#define RECONNECT_MIN_MS 500
#define RECONNECT_MAX_MS 10000
/* While transactions stream in, whether the sequences' answer is in is checked at most
 * this often. */
#define SEQ_CHECK_MS 100

/* A relation as last described by the source, with owned strings. */
typedef struct {
    uint32_t relid;     /* source OID, the key of rels */
    rt_relation_t rel;  /* descriptor, strings owned */
    uint64_t epoch;     /* record in which index is valid */
    uint32_t index;     /* index of the descriptor in that record */
    uint64_t blk_epoch; /* block (STREAM) in which blk_index is valid */
    uint32_t blk_index; /* index of the descriptor in that block */
    bool own;           /* a table of RT_OWN_SCHEMA: its changes are left out */
    int ddl_cols[5];    /* rt.ddl_log: tag, flags, search_path, objects, command (-1: none) */
} s_rel_t;

/* rt.ddl_log's columns that make a DDL change, in the order of s_rel_t.ddl_cols. */
static const char *const s_ddl_cols[5] = {"tag", "flags", "search_path", "objects", "command"};

static void s_rel_free(void **item)
{
    s_rel_t *r = *item;
    if (!r)
        return;
    free((char *)r->rel.schema);
    free((char *)r->rel.table);
    for (uint32_t i = 0; i < r->rel.ncols; i++)
        free((char *)r->rel.cols[i].name);
    free(r->rel.cols);
    free(r);
    *item = NULL;
}

static size_t s_relid_hash(const void *key)
{
    return (size_t)(uintptr_t)key * 2654435761u;
}

static int s_relid_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y ? -1 : x > y;
}

static void *s_relid_dup(const void *key)
{
    return (void *)key;
}

static void s_relid_free(void **key)
{
    *key = NULL;
}

/* ---- The replication connection (set up by source.c). */

/* first: at start, when a slot still held by the WAL sender of a killed run is waited
 * for (a reconnection retries with back-off instead, never blocking the loop). */
static int s_start_stream(rt_capture_t *self, bool first)
{
    PGconn *conn;
    if (rt_source_start(&self->opts, first, &conn) < 0)
        return RT_EDB;
    self->conn = conn;
    self->stats.connected = true;
    self->last_feedback_ms = 0;
    return RT_OK;
}

/* ---- Feedback. */

void rt_capture_send_feedback(rt_capture_t *self, bool force)
{
    int64_t now = rt_mono_ms();
    if (!self->conn)
        return;
    if (!force && !self->reply_requested && now - self->last_feedback_ms < FEEDBACK_INTERVAL_MS)
        return;
    unsigned char msg[34];
    rt_lsn_t flush = self->stats.confirmed_lsn;
    msg[0] = 'r';
    rt_put_be64(msg + 1, self->stats.received_lsn > flush ? self->stats.received_lsn : flush);
    rt_put_be64(msg + 9, flush);
    rt_put_be64(msg + 17, flush);
    rt_put_be64(msg + 25, (uint64_t)rt_pg_now_us());
    msg[33] = 0;
    if (PQputCopyData(self->conn, (const char *)msg, sizeof msg) <= 0 || PQflush(self->conn)) {
        char line[RT_PG_ERR_MAX];
        rt_warn("source: sending status to the walsender failed: %s",
                rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
        return;
    }
    self->last_feedback_ms = now;
    self->reply_requested = false;
}

/* ---- Resuming a transaction whose first chunks are stored. */

typedef struct {
    rt_capture_t *self;
    rt_record_decoder_t *dec;
    bool bad;
} s_resume_ctx_t;

static int s_resume_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_resume_ctx_t *c = arg;
    rt_capture_t *self = c->self;
    const rt_record_t *r;
    if (rt_record_decode(c->dec, data, len, &r) != RT_OK) {
        rt_warn("outbox: stored record seq %" PRIu64 " does not decode", seq);
        c->bad = true;
        return 1;
    }
    bool first = seq == self->resume.from;
    if (first) {
        self->resume.xid = r->xid;
        self->resume.commit_lsn = r->commit_lsn;
    }
    if (((r->flags & RT_REC_FIRST) != 0) != first || (r->flags & RT_REC_LAST) ||
        r->xid != self->resume.xid || r->commit_lsn != self->resume.commit_lsn) {
        rt_warn("outbox: stored record seq %" PRIu64 " does not continue the open transaction "
                "begun at seq %" PRIu64,
                seq, self->resume.from);
        c->bad = true;
        return 1;
    }
    self->resume.changes += r->nchanges;
    self->resume.to = seq;
    return 0;
}

/* Learns the transaction whose first chunks are stored above head_seq, if any, and the
 * next seq. Everything cut must be durable (rt_batch_flush_wait). */
static int s_resume_load(rt_capture_t *self)
{
    assert(!rt_batch_flight_active(self) && self->batch.nrecs == 0);
    memset(&self->resume, 0, sizeof self->resume);
    self->next_seq = rt_outbox_next_seq(self->outbox);
    uint64_t head = rt_outbox_position(self->outbox).head_seq;
    if (self->next_seq == head + 1)
        return RT_OK;
    s_resume_ctx_t c = {self, rt_record_decoder_new(), false};
    if (!c.dec)
        return RT_ENOMEM;
    self->resume.from = head + 1;
    int rc = rt_outbox_read(self->outbox, head + 1, 0, 0, s_resume_one, &c);
    rt_record_decoder_destroy(&c.dec);
    if (rc < 0)
        return rc;
    if (c.bad || self->resume.to != self->next_seq - 1) {
        memset(&self->resume, 0, sizeof self->resume);
        if ((rc = rt_outbox_discard_open(self->outbox)) < 0)
            return rc;
        self->next_seq = rt_outbox_next_seq(self->outbox);
        return RT_OK;
    }
    self->resume.active = true;
    return RT_OK;
}

/* The source sent another transaction where the stored chunks' one was expected (its
 * slot was recreated, or it was reset): those chunks can never complete. */
static int s_resume_lost(rt_capture_t *self)
{
    char lsn[32];
    rt_warn("source: the transaction of stored records %" PRIu64 "..%" PRIu64
            " (xid %u, commit %s) was not sent again; discarding them (subscribers start "
            "over from the transaction sent instead)",
            self->resume.from, self->resume.to, self->resume.xid,
            rt_lsn_format(self->resume.commit_lsn, lsn, sizeof lsn));
    self->resume.active = false;
    int rc = rt_batch_flush_wait(self); /* the discard needs nothing in flight */
    if (rc < 0)
        return rc == RT_EFULL ? RT_EIO : rc;
    if ((rc = rt_outbox_discard_open(self->outbox)) < 0)
        return rc;
    self->next_seq = rt_outbox_next_seq(self->outbox);
    return RT_OK;
}

/* ---- Records. */

static void s_record_start(rt_capture_t *self)
{
    self->epoch++;
    rt_record_builder_start(self->builder, self->next_seq, self->xid, self->commit_lsn,
                            self->commit_ts, self->origin[0] ? self->origin : NULL);
    self->building = true;
}

static int s_record_cut(rt_capture_t *self, bool last, rt_lsn_t end_lsn)
{
    const void *data;
    size_t len;
    uint8_t flags = (self->first_chunk ? RT_REC_FIRST : 0) | (last ? RT_REC_LAST : 0);
    int rc = rt_record_builder_finish(self->builder, flags, end_lsn, &data, &len);
    if (rc < 0)
        return rc;
    rc = rt_batch_add(self, data, len);
    if (rc < 0)
        return rc;
    self->next_seq++;
    self->first_chunk = false;
    self->building = false;
    return RT_OK;
}

/* The index of relid's descriptor in the record being built (in the block being built
 * with block), adding it if needed. */
static int s_record_rel(rt_capture_t *self, bool block, uint32_t relid, uint32_t *index,
                        s_rel_t **out)
{
    s_rel_t *r = zhashx_lookup(self->rels, (void *)(uintptr_t)relid);
    if (!r) {
        rt_error("source: change for relation %u before its Relation message", relid);
        return RT_EPROTO;
    }
    if (block && r->blk_epoch != self->blk.epoch) {
        r->blk_index = rt_record_builder_relation(self->blk.builder, &r->rel);
        r->blk_epoch = self->blk.epoch;
    } else if (!block && r->epoch != self->epoch) {
        r->index = rt_record_builder_relation(self->builder, &r->rel);
        r->epoch = self->epoch;
    }
    *index = block ? r->blk_index : r->index;
    if (out)
        *out = r;
    return RT_OK;
}

static int s_vals_reserve(rt_capture_t *self, size_t n)
{
    if (n <= self->vals_cap)
        return RT_OK;
    rt_value_t *a = realloc(self->vals_old, n * sizeof *a);
    if (!a)
        return RT_ENOMEM;
    self->vals_old = a;
    rt_value_t *b = realloc(self->vals_new, n * sizeof *b);
    if (!b)
        return RT_ENOMEM;
    self->vals_new = b;
    self->vals_cap = n;
    return RT_OK;
}

static int s_convert(const s_rel_t *r, const rt_pgo_tuple_t *t, rt_value_t *out)
{
    if (t->ncols != r->rel.ncols) {
        rt_error("source: row of %s.%s has %u columns, its Relation message %u", r->rel.schema,
                 r->rel.table, t->ncols, r->rel.ncols);
        return RT_EPROTO;
    }
    for (uint32_t i = 0; i < t->ncols; i++) {
        const rt_pgo_col_t *c = &t->cols[i];
        switch (c->kind) {
        case 'n': out[i] = (rt_value_t){RT_VAL_NULL, 0, NULL}; break;
        case 'u': out[i] = (rt_value_t){RT_VAL_UNCHANGED, 0, NULL}; break;
        case 't': out[i] = (rt_value_t){RT_VAL_TEXT, c->len, c->data}; break;
        default:
            rt_error("source: unexpected binary column in %s.%s", r->rel.schema, r->rel.table);
            return RT_EPROTO;
        }
    }
    return RT_OK;
}

int rt_capture_on_relation(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    s_rel_t *r = calloc(1, sizeof *r);
    if (!r)
        return RT_ENOMEM;
    r->relid = m->u.relation.relid;
    r->epoch = 0;
    r->blk_epoch = 0;
    r->rel.schema = strdup(m->u.relation.nspname[0] ? m->u.relation.nspname : "pg_catalog");
    r->rel.table = strdup(m->u.relation.relname);
    r->rel.replident = m->u.relation.replident;
    r->own = strcmp(m->u.relation.nspname, RT_OWN_SCHEMA) == 0;
    bool log = r->own && strcmp(m->u.relation.relname, "ddl_log") == 0;
    for (int k = 0; k < 5; k++) {
        r->ddl_cols[k] = -1;
        for (uint32_t i = 0; log && i < m->u.relation.natts; i++)
            if (strcmp(m->u.relation.attrs[i].name, s_ddl_cols[k]) == 0)
                r->ddl_cols[k] = (int)i;
    }
    r->rel.ncols = m->u.relation.natts;
    r->rel.cols = calloc(r->rel.ncols ? r->rel.ncols : 1, sizeof *r->rel.cols);
    bool ok = r->rel.schema && r->rel.table && r->rel.cols;
    for (uint32_t i = 0; ok && i < r->rel.ncols; i++) {
        const rt_pgo_attr_t *a = &m->u.relation.attrs[i];
        r->rel.cols[i].name = strdup(a->name);
        r->rel.cols[i].typoid = a->typoid;
        r->rel.cols[i].typmod = a->typmod;
        r->rel.cols[i].key = (a->flags & 1) != 0;
        ok = r->rel.cols[i].name != NULL;
    }
    if (!ok) {
        void *p = r;
        s_rel_free(&p);
        return RT_ENOMEM;
    }
    /* zhashx_update frees the previous descriptor through the destructor. */
    zhashx_update(self->rels, (void *)(uintptr_t)r->relid, r);
    /* A changed descriptor must be re-added to the record being built. */
    return RT_OK;
}

/* Whether relid is a table of rt's own schema (unknown relids are reported later). */
static bool s_own_rel(const rt_capture_t *self, uint32_t relid)
{
    const s_rel_t *r = zhashx_lookup(self->rels, (void *)(uintptr_t)relid);
    return r && r->own;
}

bool rt_capture_own_change(const rt_capture_t *self, const rt_pgo_msg_t *m)
{
    switch (m->type) {
    case 'I': return s_own_rel(self, m->u.insert.relid);
    case 'U': return s_own_rel(self, m->u.update.relid);
    case 'D': return s_own_rel(self, m->u.del.relid);
    case 'T':
        for (uint32_t i = 0; i < m->u.truncate.nrels; i++)
            if (!s_own_rel(self, m->u.truncate.relids[i]))
                return false;
        return true;
    default: return false;
    }
}

/* rt.ddl_log's descriptor when m inserts into it and DDL is captured, else NULL. */
static const s_rel_t *s_ddl_rel(const rt_capture_t *self, const rt_pgo_msg_t *m)
{
    if (!self->opts.ddl || m->type != 'I')
        return NULL;
    const s_rel_t *r = zhashx_lookup(self->rels, (void *)(uintptr_t)m->u.insert.relid);
    return r && r->ddl_cols[0] >= 0 ? r : NULL;
}

bool rt_capture_is_ddl(const rt_capture_t *self, const rt_pgo_msg_t *m)
{
    return s_ddl_rel(self, m) != NULL;
}

/* Adds the DDL change that a row of rt.ddl_log describes. */
static int s_add_ddl(rt_capture_t *self, const s_rel_t *r, const rt_pgo_tuple_t *t)
{
    char *v[5] = {NULL};
    int rc = RT_OK;
    for (int k = 0; k < 5 && rc == RT_OK; k++) {
        int c = r->ddl_cols[k];
        if (c < 0 || (uint32_t)c >= t->ncols || t->cols[c].kind != 't') {
            rt_error("source: a row of rt.ddl_log without its column %s: its DDL cannot be "
                     "replicated",
                     s_ddl_cols[k]);
            rc = RT_EPROTO;
        } else if (!(v[k] = strndup(t->cols[c].data, t->cols[c].len))) {
            rc = RT_ENOMEM;
        }
    }
    if (rc == RT_OK) {
        rt_ddl_t d = {.tag = v[0],
                      .flags = (uint32_t)strtoul(v[1], NULL, 10) & RT_DDL_FLAGS,
                      .search_path = v[2],
                      .objects = v[3],
                      .command = v[4]};
        rt_record_builder_ddl(self->builder, &d);
        rt_debug("source: DDL %s (%s) in transaction xid %u", d.tag, d.objects, self->xid);
        self->stats.ddl++;
    }
    for (int k = 0; k < 5; k++)
        free(v[k]);
    return rc;
}

int rt_capture_build_change(rt_capture_t *self, bool block, rt_record_builder_t *b,
                            const rt_pgo_msg_t *m)
{
    uint32_t idx;
    s_rel_t *r;
    int rc;
    switch (m->type) {
    case 'I':
        if ((rc = s_record_rel(self, block, m->u.insert.relid, &idx, &r)) < 0 ||
            (rc = s_vals_reserve(self, r->rel.ncols)) < 0 ||
            (rc = s_convert(r, &m->u.insert.newtup, self->vals_new)) < 0)
            return rc;
        rt_record_builder_insert(b, idx, r->rel.ncols, self->vals_new);
        break;
    case 'U': {
        if ((rc = s_record_rel(self, block, m->u.update.relid, &idx, &r)) < 0 ||
            (rc = s_vals_reserve(self, r->rel.ncols)) < 0 ||
            (rc = s_convert(r, &m->u.update.newtup, self->vals_new)) < 0)
            return rc;
        uint32_t nold = 0;
        if (m->u.update.old_kind) {
            if ((rc = s_convert(r, &m->u.update.oldtup, self->vals_old)) < 0)
                return rc;
            nold = r->rel.ncols;
        }
        rt_record_builder_update(b, idx, m->u.update.old_kind, nold, nold ? self->vals_old : NULL,
                                 r->rel.ncols, self->vals_new);
        break;
    }
    case 'D':
        if ((rc = s_record_rel(self, block, m->u.del.relid, &idx, &r)) < 0 ||
            (rc = s_vals_reserve(self, r->rel.ncols)) < 0 ||
            (rc = s_convert(r, &m->u.del.oldtup, self->vals_old)) < 0)
            return rc;
        rt_record_builder_delete(b, idx, m->u.del.old_kind, r->rel.ncols, self->vals_old);
        break;
    case 'T': {
        uint32_t n = m->u.truncate.nrels;
        if (n > self->trunc_cap) {
            uint32_t *t = realloc(self->trunc, n * sizeof *t);
            if (!t)
                return RT_ENOMEM;
            self->trunc = t;
            self->trunc_cap = n;
        }
        uint32_t kept = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (s_own_rel(self, m->u.truncate.relids[i]))
                continue;
            if ((rc = s_record_rel(self, block, m->u.truncate.relids[i], &self->trunc[kept++],
                                   NULL)) < 0)
                return rc;
        }
        rt_record_builder_truncate(b, m->u.truncate.flags, kept, self->trunc);
        break;
    }
    }
    return RT_OK;
}

int rt_capture_on_change(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    if (!self->in_txn) {
        rt_error("source: change message outside a transaction");
        return RT_EPROTO;
    }
    self->expect_origin = false;
    const s_rel_t *ddl = s_ddl_rel(self, m);
    if (self->skip || (!ddl && rt_capture_own_change(self, m)))
        return RT_OK;
    if (self->skip_changes > 0) {
        self->skip_changes--;
        self->txn_rows++;
        return RT_OK;
    }
    if (self->resume.active) {
        int rc = s_resume_lost(self);
        if (rc < 0)
            return rc;
    }
    if (!self->building)
        s_record_start(self);
    int rc;
    if (ddl) {
        if ((rc = s_add_ddl(self, ddl, &m->u.insert.newtup)) < 0)
            return rc;
        self->txn_rows++;
        return rt_record_builder_size(self->builder) >= RT_RECORD_TARGET_BYTES
                   ? s_record_cut(self, false, 0)
                   : RT_OK;
    }
    if ((rc = rt_capture_build_change(self, false, self->builder, m)) < 0)
        return rc;
    self->txn_rows++;
    if (rt_record_builder_size(self->builder) >= RT_RECORD_TARGET_BYTES)
        return s_record_cut(self, false, 0);
    return RT_OK;
}

int rt_capture_on_begin(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    if (self->in_txn) {
        rt_error("source: Begin inside an open transaction (xid %u)", self->xid);
        return RT_EPROTO;
    }
    self->in_txn = true;
    self->xid = m->u.begin.xid;
    self->commit_lsn = m->u.begin.final_lsn;
    self->commit_ts = m->u.begin.commit_ts;
    self->origin[0] = '\0';
    self->building = false;
    self->first_chunk = true;
    self->filtered = false;
    self->txn_rows = 0;
    self->expect_origin = true;
    /* After a source restart the stream may begin before what is already stored. */
    self->skip = self->commit_lsn <= self->pending.last_commit_lsn;
    self->skip_changes = 0;
    if (!self->skip && self->resume.active && self->commit_lsn == self->resume.commit_lsn &&
        self->xid == self->resume.xid) {
        char lsn[32];
        rt_info("source: resuming transaction xid %u (commit %s) after its %" PRIu64
                " changes stored in records %" PRIu64 "..%" PRIu64,
                self->xid, rt_lsn_format(self->commit_lsn, lsn, sizeof lsn), self->resume.changes,
                self->resume.from, self->resume.to);
        self->skip_changes = self->resume.changes;
        self->first_chunk = false;
        self->resume.active = false;
    } else if (!self->skip && self->resume.active && self->commit_lsn > self->resume.commit_lsn) {
        return s_resume_lost(self);
    }
    return RT_OK;
}

int rt_capture_on_origin(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    if (!self->in_txn || !self->expect_origin) {
        rt_error("source: Origin message out of place");
        return RT_EPROTO;
    }
    self->expect_origin = false;
    snprintf(self->origin, sizeof self->origin, "%s", m->u.origin.name);
    if (strncmp(self->origin, RT_ORIGIN_PREFIX, strlen(RT_ORIGIN_PREFIX)) == 0 && !self->skip) {
        /* Applied by an rt subscriber on this server: never send it back. */
        self->skip = true;
        self->filtered = true;
    }
    return RT_OK;
}

int rt_capture_on_commit(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    if (!self->in_txn) {
        rt_error("source: Commit outside a transaction");
        return RT_EPROTO;
    }
    self->in_txn = false;
    rt_lsn_t end = m->u.commit.end_lsn;
    if (self->skip_changes > 0) {
        rt_error("source: transaction xid %u ended %" PRIu64 " changes before the changes "
                 "already stored for it in records %" PRIu64 "..%" PRIu64
                 "; the outbox does not match the source",
                 self->xid, self->skip_changes, self->resume.from, self->resume.to);
        return RT_EIO;
    }
    if (self->skip) {
        if (self->filtered) {
            self->stats.filtered_txns++;
            self->pending.last_commit_lsn = m->u.commit.commit_lsn;
            self->pending.last_end_lsn = end;
            self->pending_dirty = true;
        } else {
            self->stats.skipped_txns++;
        }
        return RT_OK;
    }
    if (!self->building && self->first_chunk) {
        /* A transaction with no published change: nothing to store. */
        self->pending.last_commit_lsn = m->u.commit.commit_lsn;
        self->pending.last_end_lsn = end;
        self->pending_dirty = true;
        return RT_OK;
    }
    if (!self->building)
        s_record_start(self); /* the last record of a chunked transaction may be empty */
    int rc = s_record_cut(self, true, end);
    if (rc < 0)
        return rc;
    self->pending.head_seq = self->next_seq - 1;
    self->pending.last_commit_lsn = m->u.commit.commit_lsn;
    self->pending.last_end_lsn = end;
    self->pending_dirty = true;
    self->stats.txns++;
    self->stats.rows += self->txn_rows;
    return RT_OK;
}

/* ---- Sequences: records of their own, stored between transactions. */

static int s_seq_cut(rt_capture_t *self)
{
    const void *data;
    size_t len;
    self->seq_building = false;
    int rc = rt_record_builder_finish(self->builder, RT_REC_FIRST | RT_REC_LAST,
                                      self->pending.last_end_lsn, &data, &len);
    if (rc < 0)
        return rc;
    if ((rc = rt_batch_add(self, data, len)) < 0)
        return rc;
    self->pending.head_seq = self->next_seq++;
    self->pending_dirty = true;
    return RT_OK;
}

static int s_seq_add(void *arg, const char *schema, const char *name, int64_t last_value)
{
    rt_capture_t *self = arg;
    if (!self->seq_building) {
        self->epoch++;
        /* A record of sequences sits after the last transaction stored: its positions. */
        rt_record_builder_start(self->builder, self->next_seq, 0, self->pending.last_commit_lsn,
                                rt_pg_now_us(), NULL);
        self->seq_building = true;
    }
    rt_record_builder_sequence(self->builder, schema, name, last_value);
    self->stats.sequences++;
    if (rt_record_builder_size(self->builder) >= RT_RECORD_TARGET_BYTES)
        return s_seq_cut(self);
    return RT_OK;
}

/* Stores the sequences that moved, when a poll's answer is in and the stream is between
 * two transactions (the records of one transaction have consecutive seqs). */
static int s_sequences(rt_capture_t *self)
{
    int64_t now = rt_mono_ms();
    if (self->in_txn || self->building || self->resume.active || self->replay.st ||
        self->stats.blocked || !self->conn || now < self->seq_check_ms)
        return RT_OK;
    self->seq_check_ms = now + SEQ_CHECK_MS;
    int n = rt_seqs_pump(self->seqs, s_seq_add, self);
    if (n >= 0 && self->seq_building)
        n = s_seq_cut(self);
    return n < 0 ? n : RT_OK;
}

void rt_capture_resend_sequences(rt_capture_t *self)
{
    rt_seqs_resend(self->seqs);
}

static int s_handle_xlogdata(rt_capture_t *self, const char *buf, size_t len)
{
    rt_pgo_msg_t m;
    int rc = rt_pgoutput_decode(self->decoder, buf, len, &m);
    if (rc < 0) {
        rt_error("source: malformed pgoutput message (type '%c', %zu bytes): %s",
                 len ? buf[0] : '?', len, rt_strerror(rc));
        return rc;
    }
    switch (m.type) {
    case 'S': return rt_spool_on_start(self, &m);
    case 'E': return rt_spool_on_stop(self);
    case 'c': return rt_spool_on_commit(self, &m);
    case 'A': return rt_spool_on_abort(self, &m);
    default:
        if (rt_pgoutput_in_stream(self->decoder))
            return rt_spool_on_message(self, &m, buf, len);
    }
    if (m.type != 'O' && m.type != 'R' && m.type != 'Y')
        self->expect_origin = false;
    switch (m.type) {
    case 'B': return rt_capture_on_begin(self, &m);
    case 'O': return rt_capture_on_origin(self, &m);
    case 'C': return rt_capture_on_commit(self, &m);
    case 'R': return rt_capture_on_relation(self, &m);
    case 'Y': return RT_OK;
    case 'M': return RT_OK; /* logical messages are not replicated */
    case 'I':
    case 'U':
    case 'D':
    case 'T': return rt_capture_on_change(self, &m);
    default: rt_error("source: unexpected pgoutput message '%c'", m.type); return RT_EPROTO;
    }
}

/* Handles one CopyData message from the walsender. */
static int s_handle_copydata(rt_capture_t *self, const char *buf, int len)
{
    const unsigned char *u = (const unsigned char *)buf;
    if (len >= 25 && buf[0] == 'w') {
        rt_lsn_t wal_end = rt_get_be64(u + 9);
        if (wal_end > self->stats.received_lsn)
            self->stats.received_lsn = wal_end;
        return s_handle_xlogdata(self, buf + 25, (size_t)len - 25);
    }
    if (len >= 18 && buf[0] == 'k') {
        rt_lsn_t wal_end = rt_get_be64(u + 1);
        if (wal_end > self->stats.received_lsn)
            self->stats.received_lsn = wal_end;
        if (!self->in_txn)
            self->idle_lsn = wal_end;
        if (u[17])
            self->reply_requested = true;
        return RT_OK;
    }
    rt_error("source: unexpected CopyData message '%c' of %d bytes", len ? buf[0] : '?', len);
    return RT_EPROTO;
}

static void s_disconnect(rt_capture_t *self, const char *why)
{
    if (self->conn) {
        rt_warn("source: replication stream lost (%s); reconnecting", why);
        PQfinish(self->conn);
        self->conn = NULL;
    }
    self->stats.connected = false;
    self->in_txn = false;
    self->building = false;
    self->skip = false;
    rt_spool_drop_all(self);
    zhashx_purge(self->rels);
    self->reconnect_at_ms = rt_mono_ms() + self->reconnect_delay_ms;
}

/* Stores the chunks cut before the stream broke; the source sends their transaction
 * again and it resumes after them. */
static int s_abandon_open_txn(rt_capture_t *self)
{
    int rc = rt_batch_flush_wait(self);
    if (rc < 0)
        return rc;
    return s_resume_load(self);
}

static int s_reconnect(rt_capture_t *self)
{
    if (rt_mono_ms() < self->reconnect_at_ms)
        return RT_OK;
    int rc = s_abandon_open_txn(self);
    if (rc == RT_EFULL)
        return RT_OK; /* retried on the next pump */
    if (rc < 0)
        return rc;
    if (s_start_stream(self, false) == RT_OK) {
        rt_info("source: replication stream resumed on slot %s", self->opts.slot);
        self->reconnect_delay_ms = RECONNECT_MIN_MS;
        return RT_OK;
    }
    self->reconnect_delay_ms *= 2;
    if (self->reconnect_delay_ms > RECONNECT_MAX_MS)
        self->reconnect_delay_ms = RECONNECT_MAX_MS;
    self->reconnect_at_ms = rt_mono_ms() + self->reconnect_delay_ms;
    rt_warn("source: reconnect failed; next attempt in %d ms", self->reconnect_delay_ms);
    return RT_OK;
}

int rt_capture_pump(rt_capture_t *self)
{
    int rc;
    /* A commit that ended, and the next one: also while disconnected or blocked. */
    if ((rc = rt_batch_flush(self)) < 0)
        return rc;
    if (!self->conn)
        return s_reconnect(self);
    if (self->stats.blocked || rt_batch_full(self)) {
        /* The outbox is full, or the next batch is: wait for the commit (or room). */
        rt_capture_send_feedback(self, false);
        return RT_OK;
    }

    if (self->replay.st) {
        /* A streamed transaction committed: store it before reading on. */
        if ((rc = rt_spool_replay(self)) < 0)
            return rc;
        if ((rc = rt_batch_flush(self)) < 0)
            return rc;
        rt_capture_send_feedback(self, false);
        return RT_OK;
    }

    /* Read everything available, up to the batch limit: at most one group commit. */
    for (;;) {
        char line[RT_PG_ERR_MAX];
        if (!PQconsumeInput(self->conn)) {
            s_disconnect(self, rt_pg_error_line(PQerrorMessage(self->conn), line, sizeof line));
            return RT_OK;
        }
        bool got = false;
        for (;;) {
            char *buf = NULL;
            int n = PQgetCopyData(self->conn, &buf, 1);
            if (n == 0)
                break;
            if (n < 0) {
                if (n == -1) {
                    PGresult *res = PQgetResult(self->conn);
                    rt_error("source: replication stream ended: %s",
                             res ? rt_pg_error_line(PQresultErrorMessage(res), line, sizeof line)
                                 : "no result");
                    PQclear(res);
                }
                s_disconnect(self, n == -1 ? "stream ended"
                                           : rt_pg_error_line(PQerrorMessage(self->conn), line,
                                                              sizeof line));
                return RT_OK;
            }
            got = true;
            rc = s_handle_copydata(self, buf, n);
            PQfreemem(buf);
            if (rc == RT_EPROTO) {
                s_disconnect(self, "protocol error");
                return RT_OK;
            }
            if (rc < 0)
                return rc;
            if ((rc = s_sequences(self)) < 0)
                return rc;
            if (self->batch.len >= self->opts.batch_bytes || self->replay.st)
                break;
        }
        if (!got || self->batch.len >= self->opts.batch_bytes || self->replay.st)
            break;
    }

    if ((rc = s_sequences(self)) < 0)
        return rc;
    if ((rc = rt_batch_flush(self)) < 0)
        return rc;
    /* Idle and everything durable: confirm the keepalive position so the source does
     * not retain WAL for nothing. A transaction streamed before its commit may be open
     * (a large one, prepared and waiting for its COMMIT PREPARED): its commit comes
     * after that position, and the source keeps its WAL from its start (the slot's
     * restart point) and sends it whole again after a reconnect, so it does not hold
     * the confirmation back. */
    if (!self->in_txn && self->batch.nrecs == 0 && !self->pending_dirty &&
        !rt_batch_flight_active(self) && self->idle_lsn > self->stats.confirmed_lsn) {
        self->stats.confirmed_lsn = self->idle_lsn;
        rt_capture_send_feedback(self, true);
    }
    rt_capture_send_feedback(self, false);
    return RT_OK;
}

/* True while a committed streamed transaction is being stored and there is room for
 * more of it. */
static bool s_busy(const rt_capture_t *self)
{
    /* With the replay's share of the batch filled while a commit runs, the commit
     * socket wakes the loop. */
    return self->replay.st != NULL && !self->stats.blocked &&
           !(self->batch.len >= rt_spool_budget(self) && rt_batch_flight_active(self));
}

int rt_capture_wait_ms(const rt_capture_t *self, int limit)
{
    return s_busy(self) ? 0 : rt_batch_wait_ms(self, limit);
}

int rt_capture_fd(rt_capture_t *self)
{
    if (!self->conn || self->stats.blocked || rt_batch_full(self))
        return -1;
    return PQsocket(self->conn);
}

void *rt_capture_commit_socket(rt_capture_t *self)
{
    return rt_committer_socket(self->committer);
}

rt_capture_stats_t rt_capture_stats(const rt_capture_t *self)
{
    rt_capture_stats_t st = self->stats;
    st.streaming_txns = self->nstreams;
    return st;
}

rt_capture_t *rt_capture_new(const rt_capture_opts_t *opts, rt_outbox_t *outbox)
{
    rt_capture_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    self->opts.dsn = strdup(opts->dsn);
    self->opts.name = strdup(opts->name);
    self->opts.slot = strdup(opts->slot);
    self->opts.publication = strdup(opts->publication);
    self->opts.spool_dir = strdup(opts->spool_dir ? opts->spool_dir : ".");
    if (!self->opts.batch_bytes)
        self->opts.batch_bytes = 8u << 20;
    self->outbox = outbox;
    self->decoder = rt_pgoutput_new();
    self->builder = rt_record_builder_new();
    self->blk.builder = rt_record_builder_new();
    self->rels = zhashx_new();
    self->seqs = rt_seqs_new(opts->dsn, opts->publication);
    if (!self->seqs || !self->opts.dsn || !self->opts.name || !self->opts.slot ||
        !self->opts.publication || !self->opts.spool_dir || !self->decoder || !self->builder ||
        !self->blk.builder || !self->rels)
        goto fail;
    zhashx_set_key_hasher(self->rels, s_relid_hash);
    zhashx_set_key_comparator(self->rels, s_relid_cmp);
    zhashx_set_key_duplicator(self->rels, s_relid_dup);
    zhashx_set_key_destructor(self->rels, s_relid_free);
    zhashx_set_destructor(self->rels, s_rel_free);

    if (!(self->committer = rt_committer_new(outbox)))
        goto fail;
    self->durable = rt_outbox_position(outbox);
    self->pending = self->durable;
    self->stats.confirmed_lsn = self->durable.last_end_lsn;
    self->reconnect_delay_ms = RECONNECT_MIN_MS;
    if (s_resume_load(self) < 0)
        goto fail;

    if (rt_source_prepare(&self->opts) < 0 || s_start_stream(self, true) < 0)
        goto fail;
    return self;
fail:
    rt_capture_destroy(&self);
    return NULL;
}

void rt_capture_destroy(rt_capture_t **self_p)
{
    rt_capture_t *self = *self_p;
    if (!self)
        return;
    /* Store every record cut before leaving (chunks of a transaction still open are
     * resumed after them); what cannot be stored, the source sends again. */
    if (self->committer && rt_batch_flush_wait(self) < 0)
        rt_warn("could not store the last batch before stopping; the source sends it again");
    rt_committer_destroy(&self->committer);
    if (self->conn)
        PQfinish(self->conn);
    rt_spool_drop_all(self);
    free(self->streams);
    free(self->replay.buf);
    rt_pgoutput_destroy(&self->decoder);
    rt_record_builder_destroy(&self->builder);
    rt_record_builder_destroy(&self->blk.builder);
    zhashx_destroy(&self->rels);
    rt_seqs_destroy(&self->seqs);
    free(self->vals_old);
    free(self->vals_new);
    free(self->trunc);
    rt_batch_free(&self->batch);
    rt_batch_free(&self->flight);
    free((char *)self->opts.dsn);
    free((char *)self->opts.name);
    free((char *)self->opts.slot);
    free((char *)self->opts.publication);
    free((char *)self->opts.spool_dir);
    free(self);
    *self_p = NULL;
}
