/* common/wire_record.c - REC frames: the record builder and the record decoder.
 *
 *   REC      ["REC", 1, seq, xid, flags, commit_lsn, end_lsn, commit_ts, origin|nil,
 *             [[schema, table, replident, [[name, typoid, typmod, key], ...]], ...],
 *             [change, ...]]
 *   change   [73 'I', rel, newrow]
 *            [85 'U', rel, old_kind ('K' | 'O' | 0), oldrow | nil, newrow]
 *            [68 'D', rel, old_kind ('K' | 'O'), oldrow]
 *            [84 'T', flags, [rel, ...]]
 *   value    nil (NULL) | false (unchanged TOAST) | bin (text bytes + one NUL)
 */
#include "wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

/* Elements of the top-level REC array. */
#define S_REC_FIELDS 11u

/* Grows *arr (elements of size elem, capacity *cap) to hold need elements. */
static int s_reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return RT_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return RT_ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return RT_ENOMEM;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return RT_ENOMEM;
    *arr = p;
    *cap = ncap;
    return RT_OK;
}

/* ---------------------------------------------------------------------------------
 * Record builder. */

struct rt_record_builder_t {
    msgpack_sbuffer changes; /* packed changes, back to back */
    msgpack_sbuffer rels;    /* packed relation descriptors, back to back */
    msgpack_sbuffer out;     /* the finished frame */
    rt__wire_packer_t cpk;   /* packs into changes; err is the builder's sticky error */
    rt__wire_packer_t rpk;   /* packs into rels */
    uint32_t nchanges;       /* changes packed */
    uint32_t nrels;          /* relations packed */
    uint32_t nseqs;          /* of the changes, sequences */
    uint32_t *relcols;       /* column count of each relation */
    size_t relcols_cap;      /* capacity of relcols */
    uint64_t seq;            /* header fields of the record being built */
    uint32_t xid;
    rt_lsn_t commit_lsn;
    int64_t commit_ts;
    bool has_origin;   /* origin is set */
    char *origin;      /* copy of the origin name */
    size_t origin_cap; /* capacity of origin */
};

rt_record_builder_t *rt_record_builder_new(void)
{
    rt_record_builder_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    msgpack_sbuffer_init(&self->changes);
    msgpack_sbuffer_init(&self->rels);
    msgpack_sbuffer_init(&self->out);
    msgpack_packer_init(&self->cpk.pk, &self->changes, msgpack_sbuffer_write);
    msgpack_packer_init(&self->rpk.pk, &self->rels, msgpack_sbuffer_write);
    return self;
}

void rt_record_builder_destroy(rt_record_builder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_record_builder_t *self = *self_p;
    msgpack_sbuffer_destroy(&self->changes);
    msgpack_sbuffer_destroy(&self->rels);
    msgpack_sbuffer_destroy(&self->out);
    free(self->relcols);
    free(self->origin);
    free(self);
    *self_p = NULL;
}

/* Records the first error of this record. */
static void s_fail(rt_record_builder_t *self, int err)
{
    if (self->cpk.err == RT_OK)
        self->cpk.err = err;
}

void rt_record_builder_start(rt_record_builder_t *self, uint64_t seq, uint32_t xid,
                             rt_lsn_t commit_lsn, int64_t commit_ts, const char *origin)
{
    msgpack_sbuffer_clear(&self->changes);
    msgpack_sbuffer_clear(&self->rels);
    msgpack_sbuffer_clear(&self->out);
    self->cpk.err = self->rpk.err = RT_OK;
    self->nchanges = self->nrels = self->nseqs = 0;
    self->seq = seq;
    self->xid = xid;
    self->commit_lsn = commit_lsn;
    self->commit_ts = commit_ts;
    self->has_origin = origin != NULL;
    if (origin) {
        size_t n = strlen(origin);
        if (n > RT__WIRE_MAX_STR) {
            s_fail(self, RT_EINVAL);
            return;
        }
        void *buf = self->origin;
        if (s_reserve(&buf, &self->origin_cap, n + 1, 1) != RT_OK) {
            s_fail(self, RT_ENOMEM);
            return;
        }
        self->origin = buf;
        memcpy(self->origin, origin, n + 1);
    }
}

uint32_t rt_record_builder_relation(rt_record_builder_t *self, const rt_relation_t *rel)
{
    uint32_t index = self->nrels;
    void *buf = self->relcols;

    if (self->cpk.err != RT_OK)
        return index;
    if (!rel || (rel->ncols && !rel->cols) || !strchr("dnfi", rel->replident) ||
        rel->replident == '\0') {
        s_fail(self, RT_EINVAL);
        return index;
    }
    if (s_reserve(&buf, &self->relcols_cap, (size_t)index + 1, sizeof *self->relcols)) {
        s_fail(self, RT_ENOMEM);
        return index;
    }
    self->relcols = buf;
    rt__wire_packer_t *sp = &self->rpk;
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 4));
    rt__wire_pack_cstr(sp, rel->schema);
    rt__wire_pack_cstr(sp, rel->table);
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, (uint8_t)rel->replident));
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, rel->ncols));
    for (uint32_t i = 0; i < rel->ncols && sp->err == RT_OK; i++) {
        const rt_column_t *col = &rel->cols[i];
        RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 4));
        rt__wire_pack_cstr(sp, col->name);
        RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, col->typoid));
        RT__WIRE_PACK(sp, msgpack_pack_int32(&sp->pk, col->typmod));
        RT__WIRE_PACK(sp, col->key ? msgpack_pack_true(&sp->pk) : msgpack_pack_false(&sp->pk));
    }
    if (sp->err != RT_OK) {
        s_fail(self, sp->err);
        return index;
    }
    self->relcols[index] = rel->ncols;
    self->nrels++;
    return index;
}

/* Checks rel is a relation of this record with ncols columns. */
static bool s_check_row(rt_record_builder_t *self, uint32_t rel, uint32_t ncols,
                        const rt_value_t *vals)
{
    if (rel >= self->nrels || self->relcols[rel] != ncols || (ncols && !vals)) {
        s_fail(self, RT_EINVAL);
        return false;
    }
    return true;
}

static void s_pack_row_value(rt_record_builder_t *self, const rt_value_t *v)
{
    rt__wire_packer_t *sp = &self->cpk;
    switch (v->kind) {
    case RT_VAL_NULL: RT__WIRE_PACK(sp, msgpack_pack_nil(&sp->pk)); break;
    case RT_VAL_UNCHANGED: RT__WIRE_PACK(sp, msgpack_pack_false(&sp->pk)); break;
    case RT_VAL_TEXT:
        if ((v->len && !v->data) || v->len >= RT_WIRE_MAX_RECORD ||
            (v->len && memchr(v->data, '\0', v->len))) {
            s_fail(self, RT_EINVAL);
            return;
        }
        RT__WIRE_PACK(sp, msgpack_pack_bin(&sp->pk, (size_t)v->len + 1));
        if (v->len)
            RT__WIRE_PACK(sp, msgpack_pack_bin_body(&sp->pk, v->data, v->len));
        RT__WIRE_PACK(sp, msgpack_pack_bin_body(&sp->pk, "", 1));
        break;
    default: s_fail(self, RT_EINVAL); return;
    }
}

static void s_pack_row(rt_record_builder_t *self, uint32_t ncols, const rt_value_t *vals)
{
    rt__wire_packer_t *sp = &self->cpk;
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, ncols));
    for (uint32_t i = 0; i < ncols && sp->err == RT_OK; i++)
        s_pack_row_value(self, &vals[i]);
}

void rt_record_builder_insert(rt_record_builder_t *self, uint32_t rel, uint32_t ncols,
                              const rt_value_t *newvals)
{
    rt__wire_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK || !s_check_row(self, rel, ncols, newvals))
        return;
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 3));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, 'I'));
    RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, rel));
    s_pack_row(self, ncols, newvals);
    self->nchanges++;
}

void rt_record_builder_update(rt_record_builder_t *self, uint32_t rel, char old_kind, uint32_t nold,
                              const rt_value_t *oldvals, uint32_t nnew, const rt_value_t *newvals)
{
    rt__wire_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK || !s_check_row(self, rel, nnew, newvals))
        return;
    if (old_kind == 0 ? nold != 0 : (old_kind != 'K' && old_kind != 'O')) {
        s_fail(self, RT_EINVAL);
        return;
    }
    if (old_kind && !s_check_row(self, rel, nold, oldvals))
        return;
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 5));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, 'U'));
    RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, rel));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, (uint8_t)old_kind));
    if (old_kind)
        s_pack_row(self, nold, oldvals);
    else
        RT__WIRE_PACK(sp, msgpack_pack_nil(&sp->pk));
    s_pack_row(self, nnew, newvals);
    self->nchanges++;
}

void rt_record_builder_delete(rt_record_builder_t *self, uint32_t rel, char old_kind, uint32_t nold,
                              const rt_value_t *oldvals)
{
    rt__wire_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if (old_kind != 'K' && old_kind != 'O') {
        s_fail(self, RT_EINVAL);
        return;
    }
    if (!s_check_row(self, rel, nold, oldvals))
        return;
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 4));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, 'D'));
    RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, rel));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, (uint8_t)old_kind));
    s_pack_row(self, nold, oldvals);
    self->nchanges++;
}

void rt_record_builder_truncate(rt_record_builder_t *self, uint8_t flags, uint32_t nrels,
                                const uint32_t *rels)
{
    rt__wire_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if ((flags & ~3u) || (nrels && !rels)) {
        s_fail(self, RT_EINVAL);
        return;
    }
    for (uint32_t i = 0; i < nrels; i++) {
        if (rels[i] >= self->nrels) {
            s_fail(self, RT_EINVAL);
            return;
        }
    }
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 3));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, 'T'));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, flags));
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, nrels));
    for (uint32_t i = 0; i < nrels; i++)
        RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, rels[i]));
    self->nchanges++;
}

void rt_record_builder_sequence(rt_record_builder_t *self, const char *schema, const char *name,
                                int64_t last_value)
{
    rt__wire_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if (!schema || !name) {
        s_fail(self, RT_EINVAL);
        return;
    }
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 4));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, 'Q'));
    rt__wire_pack_cstr(sp, schema);
    rt__wire_pack_cstr(sp, name);
    RT__WIRE_PACK(sp, msgpack_pack_int64(&sp->pk, last_value));
    self->nchanges++;
    self->nseqs++;
}

/* Packs text as a row value does: bin with a terminating NUL, none inside. */
static void s_pack_text(rt_record_builder_t *self, const char *text)
{
    rt_value_t v = {RT_VAL_TEXT, text ? (uint32_t)strnlen(text, RT_WIRE_MAX_RECORD) : 0, text};
    s_pack_row_value(self, &v);
}

void rt_record_builder_ddl(rt_record_builder_t *self, const rt_ddl_t *ddl)
{
    rt__wire_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if (!ddl || !ddl->tag || !ddl->search_path || !ddl->objects || !ddl->command ||
        (ddl->flags & ~RT_DDL_FLAGS)) {
        s_fail(self, RT_EINVAL);
        return;
    }
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 6));
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, 'L'));
    rt__wire_pack_cstr(sp, ddl->tag);
    RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, ddl->flags));
    s_pack_text(self, ddl->search_path);
    s_pack_text(self, ddl->objects);
    s_pack_text(self, ddl->command);
    self->nchanges++;
}

uint32_t rt_record_builder_nchanges(const rt_record_builder_t *self)
{
    return self->nchanges;
}

size_t rt_record_builder_size(const rt_record_builder_t *self)
{
    return self->changes.size;
}

int rt_record_builder_finish(rt_record_builder_t *self, uint8_t flags, rt_lsn_t end_lsn,
                             const void **data, size_t *len)
{
    rt__wire_packer_t out = {.err = self->cpk.err};
    *data = NULL;
    *len = 0;
    if (flags & ~(RT_REC_FIRST | RT_REC_LAST))
        return RT_EINVAL;
    if (self->nseqs &&
        (self->nseqs != self->nchanges || self->nrels || flags != (RT_REC_FIRST | RT_REC_LAST)))
        return RT_EINVAL;
    if (out.err == RT_OK && self->changes.size + self->rels.size > RT_WIRE_MAX_RECORD)
        out.err = RT_EINVAL;
    if (out.err != RT_OK)
        return out.err;

    msgpack_sbuffer_clear(&self->out);
    msgpack_packer_init(&out.pk, &self->out, msgpack_sbuffer_write);
    rt__wire_pack_header(&out, "REC", RT_WIRE_VERSION, S_REC_FIELDS - 2);
    RT__WIRE_PACK(&out, msgpack_pack_uint64(&out.pk, self->seq));
    RT__WIRE_PACK(&out, msgpack_pack_uint32(&out.pk, self->xid));
    RT__WIRE_PACK(&out, msgpack_pack_uint8(&out.pk, flags));
    RT__WIRE_PACK(&out, msgpack_pack_uint64(&out.pk, self->commit_lsn));
    RT__WIRE_PACK(&out, msgpack_pack_uint64(&out.pk, end_lsn));
    RT__WIRE_PACK(&out, msgpack_pack_int64(&out.pk, self->commit_ts));
    if (self->has_origin)
        rt__wire_pack_cstr(&out, self->origin);
    else
        RT__WIRE_PACK(&out, msgpack_pack_nil(&out.pk));
    RT__WIRE_PACK(&out, msgpack_pack_array(&out.pk, self->nrels));
    RT__WIRE_PACK(&out, msgpack_sbuffer_write(&self->out, self->rels.data, self->rels.size));
    RT__WIRE_PACK(&out, msgpack_pack_array(&out.pk, self->nchanges));
    RT__WIRE_PACK(&out, msgpack_sbuffer_write(&self->out, self->changes.data, self->changes.size));
    if (out.err == RT_OK && self->out.size > RT_WIRE_MAX_RECORD)
        out.err = RT_EINVAL;
    if (out.err != RT_OK)
        return out.err;
    *data = self->out.data;
    *len = self->out.size;
    return RT_OK;
}

bool rt_record_is_sequences(const rt_record_t *rec)
{
    return rec->nchanges > 0 && rec->changes[0].op == 'Q';
}

/* ---------------------------------------------------------------------------------
 * Record decoder. */

struct rt_record_decoder_t {
    rt_record_t rec;     /* the last decoded record */
    rt_relation_t *rels; /* rec.rels storage */
    size_t rels_cap;
    rt_column_t *cols; /* columns of every relation, relation after relation */
    size_t cols_cap;
    rt_change_t *changes; /* rec.changes storage */
    size_t changes_cap;
    rt_value_t *values; /* row values of every change, in change order */
    size_t values_cap;
    uint32_t *truncs; /* truncated relation indexes of every change */
    size_t truncs_cap;
    rt_ddl_t *ddls; /* schema changes, at most one per change */
    size_t ddls_cap;
    char *names; /* NUL-terminated copies of names and origin */
    size_t names_cap;
    size_t names_used;
};

rt_record_decoder_t *rt_record_decoder_new(void)
{
    return calloc(1, sizeof(rt_record_decoder_t));
}

void rt_record_decoder_destroy(rt_record_decoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_record_decoder_t *self = *self_p;
    free(self->rels);
    free(self->cols);
    free(self->changes);
    free(self->values);
    free(self->truncs);
    free(self->ddls);
    free(self->names);
    free(self);
    *self_p = NULL;
}

/* Bytes the names arena needs for the strings of the rels array and the origin: an
 * upper bound taken before they are checked, so that copies never move the arena. */
static size_t s_names_need(const msgpack_object *origin, const msgpack_object *rels,
                           const msgpack_object *changes)
{
    size_t need = 0;
    if (origin->type == MSGPACK_OBJECT_STR)
        need += (size_t)origin->via.str.size + 1;
    /* The names of sequences: every str of a change. */
    for (uint32_t i = 0; changes->type == MSGPACK_OBJECT_ARRAY && i < changes->via.array.size;
         i++) {
        const msgpack_object *ch = &changes->via.array.ptr[i];
        for (uint32_t j = 0; ch->type == MSGPACK_OBJECT_ARRAY && j < ch->via.array.size; j++)
            if (ch->via.array.ptr[j].type == MSGPACK_OBJECT_STR)
                need += (size_t)ch->via.array.ptr[j].via.str.size + 1;
    }
    if (rels->type != MSGPACK_OBJECT_ARRAY)
        return need;
    for (uint32_t i = 0; i < rels->via.array.size; i++) {
        const msgpack_object *rel = &rels->via.array.ptr[i];
        if (rel->type != MSGPACK_OBJECT_ARRAY)
            continue;
        for (uint32_t j = 0; j < rel->via.array.size; j++) {
            const msgpack_object *f = &rel->via.array.ptr[j];
            if (f->type == MSGPACK_OBJECT_STR)
                need += (size_t)f->via.str.size + 1;
            if (j != 3 || f->type != MSGPACK_OBJECT_ARRAY)
                continue;
            for (uint32_t k = 0; k < f->via.array.size; k++) {
                const msgpack_object *col = &f->via.array.ptr[k];
                if (col->type == MSGPACK_OBJECT_ARRAY && col->via.array.size > 0 &&
                    col->via.array.ptr[0].type == MSGPACK_OBJECT_STR)
                    need += (size_t)col->via.array.ptr[0].via.str.size + 1;
            }
        }
    }
    return need;
}

/* Reads a str field into the names arena; returns the copy ("" on failure). */
static const char *s_name(rt_record_decoder_t *self, rt__wire_cursor_t *c)
{
    const char *p;
    uint32_t n;
    rt__wire_str(c, &p, &n);
    if (c->bad)
        return "";
    if (self->names_cap - self->names_used < (size_t)n + 1) {
        c->bad = true;
        return "";
    }
    char *dst = self->names + self->names_used;
    memcpy(dst, p, n);
    dst[n] = '\0';
    self->names_used += (size_t)n + 1;
    return dst;
}

static int s_decode_rels(rt_record_decoder_t *self, rt__wire_cursor_t *rc)
{
    rt_record_t *rec = &self->rec;
    rt__wire_cursor_t rels;
    size_t ncols_total = 0;
    void *buf;

    rt__wire_sub(rc, &rels, UINT32_MAX);
    if (rels.bad)
        return RT_EPROTO;
    buf = self->rels;
    if (s_reserve(&buf, &self->rels_cap, rels.n, sizeof *self->rels) != RT_OK)
        return RT_ENOMEM;
    self->rels = buf;
    for (uint32_t i = 0; i < rels.n; i++) {
        rt_relation_t *rel = &self->rels[i];
        rt__wire_cursor_t rc1, cols;
        rt__wire_sub(&rels, &rc1, 4);
        rel->schema = s_name(self, &rc1);
        rel->table = s_name(self, &rc1);
        uint64_t ri = rt__wire_uint(&rc1, 0x7f);
        if (!rc1.bad && !(ri == 'd' || ri == 'n' || ri == 'f' || ri == 'i'))
            rc1.bad = true;
        rel->replident = (char)ri;
        rt__wire_sub(&rc1, &cols, UINT32_MAX);
        if (rc1.bad)
            return RT_EPROTO;
        rel->ncols = cols.n;
        rel->cols = NULL;
        buf = self->cols;
        if (s_reserve(&buf, &self->cols_cap, ncols_total + cols.n, sizeof *self->cols))
            return RT_ENOMEM;
        self->cols = buf;
        for (uint32_t j = 0; j < cols.n; j++) {
            rt_column_t *col = &self->cols[ncols_total + j];
            rt__wire_cursor_t cc;
            rt__wire_sub(&cols, &cc, 4);
            col->name = s_name(self, &cc);
            col->typoid = (uint32_t)rt__wire_uint(&cc, UINT32_MAX);
            col->typmod = (int32_t)rt__wire_int(&cc, INT32_MIN, INT32_MAX);
            col->key = rt__wire_bool(&cc);
            if (cc.bad)
                return RT_EPROTO;
        }
        ncols_total += cols.n;
    }
    /* The columns no longer move: point each relation at its own. */
    ncols_total = 0;
    for (uint32_t i = 0; i < rels.n; i++) {
        self->rels[i].cols = self->rels[i].ncols ? &self->cols[ncols_total] : NULL;
        ncols_total += self->rels[i].ncols;
    }
    rec->rels = self->rels;
    rec->nrels = rels.n;
    return RT_OK;
}

/* Reads a row of ncols values into the values pool at *used. */
static int s_decode_row(rt_record_decoder_t *self, rt__wire_cursor_t *cc, uint32_t ncols,
                        size_t *used)
{
    rt__wire_cursor_t row;
    void *buf = self->values;

    rt__wire_sub(cc, &row, ncols);
    if (row.bad)
        return RT_EPROTO;
    if (s_reserve(&buf, &self->values_cap, *used + ncols, sizeof *self->values))
        return RT_ENOMEM;
    self->values = buf;
    for (uint32_t i = 0; i < ncols; i++) {
        const msgpack_object *o = rt__wire_next(&row);
        rt_value_t *v = &self->values[*used + i];
        v->len = 0;
        v->data = NULL;
        if (o->type == MSGPACK_OBJECT_NIL) {
            v->kind = RT_VAL_NULL;
        } else if (o->type == MSGPACK_OBJECT_BOOLEAN && !o->via.boolean) {
            v->kind = RT_VAL_UNCHANGED;
        } else if (rt__wire_is_text(o)) {
            v->kind = RT_VAL_TEXT;
            v->len = o->via.bin.size - 1;
            v->data = o->via.bin.ptr;
        } else {
            return RT_EPROTO;
        }
    }
    *used += ncols;
    return RT_OK;
}

/* Reads a text field (a bin as a row's text value); returns a pointer into the frame
 * ("" on failure). */
static const char *s_text(rt__wire_cursor_t *c)
{
    const msgpack_object *o = rt__wire_next(c);
    if (c->bad)
        return "";
    if (!rt__wire_is_text(o)) {
        c->bad = true;
        return "";
    }
    return o->via.bin.ptr;
}

static int s_decode_changes(rt_record_decoder_t *self, rt__wire_cursor_t *rc)
{
    rt_record_t *rec = &self->rec;
    rt__wire_cursor_t changes;
    size_t nvalues = 0, ntruncs = 0, nseqs = 0;
    void *buf;
    int err;

    rt__wire_sub(rc, &changes, UINT32_MAX);
    if (changes.bad)
        return RT_EPROTO;
    buf = self->changes;
    if (s_reserve(&buf, &self->changes_cap, changes.n, sizeof *self->changes) != RT_OK)
        return RT_ENOMEM;
    self->changes = buf;
    uint32_t nddls = 0;
    for (uint32_t i = 0; i < changes.n; i++) {
        rt_change_t *ch = &self->changes[i];
        rt__wire_cursor_t cc;
        memset(ch, 0, sizeof *ch);
        rt__wire_sub(&changes, &cc, UINT32_MAX);
        uint64_t op = rt__wire_uint(&cc, 0x7f);
        if (cc.bad)
            return RT_EPROTO;
        ch->op = (char)op;
        if (op == 'Q') {
            if (cc.n != 4)
                return RT_EPROTO;
            ch->seq_schema = s_name(self, &cc);
            ch->seq_name = s_name(self, &cc);
            ch->seq_value = rt__wire_int(&cc, INT64_MIN, INT64_MAX);
            if (cc.bad)
                return RT_EPROTO;
            nseqs++;
            continue;
        }
        if (op == 'L') {
            if (cc.n != 6)
                return RT_EPROTO;
            if (nddls == 0) {
                buf = self->ddls;
                if (s_reserve(&buf, &self->ddls_cap, changes.n, sizeof *self->ddls) != RT_OK)
                    return RT_ENOMEM;
                self->ddls = buf;
            }
            rt_ddl_t *d = &self->ddls[nddls++];
            d->tag = s_name(self, &cc);
            d->flags = (uint32_t)rt__wire_uint(&cc, RT_DDL_FLAGS);
            d->search_path = s_text(&cc);
            d->objects = s_text(&cc);
            d->command = s_text(&cc);
            if (cc.bad || !d->tag[0] || !d->command[0])
                return RT_EPROTO;
            ch->ddl = d;
            continue;
        }
        if (op == 'T') {
            rt__wire_cursor_t rels;
            if (cc.n != 3)
                return RT_EPROTO;
            ch->trunc_flags = (uint8_t)rt__wire_uint(&cc, 3);
            rt__wire_sub(&cc, &rels, UINT32_MAX);
            if (cc.bad)
                return RT_EPROTO;
            buf = self->truncs;
            if (s_reserve(&buf, &self->truncs_cap, ntruncs + rels.n, sizeof *self->truncs))
                return RT_ENOMEM;
            self->truncs = buf;
            for (uint32_t j = 0; j < rels.n; j++)
                self->truncs[ntruncs + j] = (uint32_t)rt__wire_uint(&rels, rec->nrels - 1u);
            if (rels.bad || (rels.n && rec->nrels == 0))
                return RT_EPROTO;
            ch->ntrunc = rels.n;
            ntruncs += rels.n;
            continue;
        }
        uint32_t want = op == 'I' ? 3 : op == 'U' ? 5 : op == 'D' ? 4 : 0;
        if (want == 0 || cc.n != want || rec->nrels == 0)
            return RT_EPROTO;
        ch->rel = (uint32_t)rt__wire_uint(&cc, rec->nrels - 1u);
        if (op != 'I') {
            uint64_t kind = rt__wire_uint(&cc, 0x7f);
            if (!(kind == 'K' || kind == 'O' || (op == 'U' && kind == 0)))
                return RT_EPROTO;
            ch->old_kind = (char)kind;
        }
        if (cc.bad)
            return RT_EPROTO;
        uint32_t ncols = rec->rels[ch->rel].ncols;
        if (op == 'U' && ch->old_kind == 0) {
            if (rt__wire_next(&cc)->type != MSGPACK_OBJECT_NIL)
                return RT_EPROTO;
        } else if (op != 'I') {
            if ((err = s_decode_row(self, &cc, ncols, &nvalues)) != RT_OK)
                return err;
            ch->nold = ncols;
        }
        if (op != 'D') {
            if ((err = s_decode_row(self, &cc, ncols, &nvalues)) != RT_OK)
                return err;
            ch->nnew = ncols;
        }
        if (cc.bad)
            return RT_EPROTO;
    }
    /* Sequences travel in records of their own, each a whole transaction. */
    if (nseqs && (nseqs != changes.n || rec->nrels || rec->flags != (RT_REC_FIRST | RT_REC_LAST)))
        return RT_EPROTO;
    /* Rows of zero columns and empty truncates point at the start of a pool: make sure
     * it exists, so that they get a valid pointer rather than an offset from NULL. */
    buf = self->values;
    if (s_reserve(&buf, &self->values_cap, 1, sizeof *self->values) != RT_OK)
        return RT_ENOMEM;
    self->values = buf;
    buf = self->truncs;
    if (s_reserve(&buf, &self->truncs_cap, 1, sizeof *self->truncs) != RT_OK)
        return RT_ENOMEM;
    self->truncs = buf;
    /* The pools no longer move: point each change at its rows and indexes. */
    nvalues = ntruncs = 0;
    for (uint32_t i = 0; i < changes.n; i++) {
        rt_change_t *ch = &self->changes[i];
        if (ch->old_kind) {
            ch->old = &self->values[nvalues];
            nvalues += ch->nold;
        }
        if (ch->op == 'I' || ch->op == 'U') {
            ch->new_ = &self->values[nvalues];
            nvalues += ch->nnew;
        }
        if (ch->op == 'T') {
            ch->trunc_rels = &self->truncs[ntruncs];
            ntruncs += ch->ntrunc;
        }
    }
    rec->changes = self->changes;
    rec->nchanges = changes.n;
    return RT_OK;
}

int rt_record_decode(rt_record_decoder_t *self, const void *frame, size_t len,
                     const rt_record_t **rec)
{
    rt_record_t *r = &self->rec;
    msgpack_unpacked u;
    rt__wire_cursor_t c;
    void *buf;
    int err;

    *rec = NULL;
    memset(r, 0, sizeof *r);
    self->names_used = 0;
    msgpack_unpacked_init(&u);
    if ((err = rt__wire_unpack(&u, frame, len)) != RT_OK)
        goto cleanup;
    err = RT_EPROTO;
    rt__wire_open(&c, &u.data, S_REC_FIELDS);
    if (c.bad)
        goto cleanup;
    buf = self->names;
    if (s_reserve(&buf, &self->names_cap, s_names_need(&c.items[8], &c.items[9], &c.items[10]),
                  1)) {
        err = RT_ENOMEM;
        goto cleanup;
    }
    self->names = buf;

    rt__wire_header(&c, "REC", RT_WIRE_VERSION);
    r->seq = rt__wire_uint(&c, UINT64_MAX);
    r->xid = (uint32_t)rt__wire_uint(&c, UINT32_MAX);
    r->flags = (uint8_t)rt__wire_uint(&c, RT_REC_FIRST | RT_REC_LAST);
    r->commit_lsn = rt__wire_uint(&c, UINT64_MAX);
    r->end_lsn = rt__wire_uint(&c, UINT64_MAX);
    r->commit_ts = rt__wire_int(&c, INT64_MIN, INT64_MAX);
    if (!c.bad && c.items[c.i].type == MSGPACK_OBJECT_NIL)
        c.i++;
    else
        r->origin = s_name(self, &c);
    if (c.bad)
        goto cleanup;
    if ((err = s_decode_rels(self, &c)) != RT_OK)
        goto cleanup;
    if ((err = s_decode_changes(self, &c)) != RT_OK)
        goto cleanup;
    err = c.bad || c.i != c.n ? RT_EPROTO : RT_OK;
cleanup:
    /* Strings and values point into frame, not into the unpacked objects. */
    msgpack_unpacked_destroy(&u);
    if (err == RT_OK)
        *rec = r;
    else
        memset(r, 0, sizeof *r);
    return err;
}
