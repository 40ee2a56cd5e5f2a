/* common/wire.c - MessagePack codec for outbox records and the control messages.
 *
 * Every frame is one msgpack array [type:str, version:uint, fields...] (schemas/wire.md).
 *
 *   REC      ["REC", 1, seq, xid, flags, commit_lsn, end_lsn, commit_ts, origin|nil,
 *             [[schema, table, replident, [[name, typoid, typmod, key], ...]], ...],
 *             [change, ...]]
 *   change   [73 'I', rel, newrow]
 *            [85 'U', rel, old_kind ('K' | 'O' | 0), oldrow | nil, newrow]
 *            [68 'D', rel, old_kind ('K' | 'O'), oldrow]
 *            [84 'T', flags, [rel, ...]]
 *   value    nil (NULL) | false (unchanged TOAST) | bin (text bytes + one NUL)
 *
 * Decoding is pure: no logging, malformed input gives RT_EPROTO. Every frame is first
 * walked by rt_wire_prevalidate() (declared lengths, nesting, trailing bytes), since
 * msgpack-c trusts declared sizes; then msgpack_unpack_next() must consume it whole.
 */
#include "wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* Longest string field (names, origin, texts) either side writes or accepts. */
#define S_MAX_STR 4096u
/* Deepest container nesting rt_wire_prevalidate() accepts. */
#define S_MAX_DEPTH 16
/* Elements of the top-level REC array. */
#define S_REC_FIELDS 11u

/* ---------------------------------------------------------------------------------
 * Pre-validation: an iterative walk over the raw bytes, no msgpack-c. */

/* Reads an n-byte big-endian length at p. */
static uint64_t s_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int rt_wire_prevalidate(const void *frame, size_t len)
{
    const unsigned char *p = frame;
    uint64_t pending[S_MAX_DEPTH + 1]; /* objects still expected at each level */
    int depth = 0;
    size_t pos = 0;

    if (!p || len == 0 || len > RT_WIRE_MAX_RECORD)
        return RT_EPROTO;
    if (len > RT_WIRE_MAX_FRAME && rt_msg_peek_type(frame, len) != RT_MSG_REC &&
        rt_msg_peek_type(frame, len) != RT_MSG_COPY_DATA)
        return RT_EPROTO;
    pending[0] = 1;
    while (pos < len) {
        if (depth < 0)
            return RT_EPROTO; /* trailing bytes after the top-level object */
        unsigned char b = p[pos++];
        size_t left = len - pos;
        size_t lenbytes = 0; /* size of a length or count field that follows */
        size_t fixed = 0;    /* payload bytes whose size the type byte gives */
        int kind = 0;        /* 0 scalar, 1 str/bin, 2 ext, 3 array, 4 map */
        uint64_t n = 0;

        pending[depth]--;
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) {
            /* fixint, nil, false, true */
        } else if (b <= 0x8f) {
            kind = 4;
            n = b & 0x0f;
        } else if (b <= 0x9f) {
            kind = 3;
            n = b & 0x0f;
        } else if (b <= 0xbf) {
            kind = 1;
            n = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                kind = 1;
                lenbytes = 1;
                break;
            case 0xc5:
            case 0xda:
                kind = 1;
                lenbytes = 2;
                break;
            case 0xc6:
            case 0xdb:
                kind = 1;
                lenbytes = 4;
                break;
            case 0xc7:
                kind = 2;
                lenbytes = 1;
                break;
            case 0xc8:
                kind = 2;
                lenbytes = 2;
                break;
            case 0xc9:
                kind = 2;
                lenbytes = 4;
                break;
            case 0xca: fixed = 4; break;
            case 0xcb: fixed = 8; break;
            case 0xcc:
            case 0xd0: fixed = 1; break;
            case 0xcd:
            case 0xd1: fixed = 2; break;
            case 0xce:
            case 0xd2: fixed = 4; break;
            case 0xcf:
            case 0xd3: fixed = 8; break;
            case 0xd4: fixed = 2; break;
            case 0xd5: fixed = 3; break;
            case 0xd6: fixed = 5; break;
            case 0xd7: fixed = 9; break;
            case 0xd8: fixed = 17; break;
            case 0xdc:
                kind = 3;
                lenbytes = 2;
                break;
            case 0xdd:
                kind = 3;
                lenbytes = 4;
                break;
            case 0xde:
                kind = 4;
                lenbytes = 2;
                break;
            case 0xdf:
                kind = 4;
                lenbytes = 4;
                break;
            default: return RT_EPROTO; /* 0xc1, never used */
            }
        }
        if (lenbytes) {
            if (left < lenbytes)
                return RT_EPROTO;
            n = s_be(p + pos, lenbytes);
            pos += lenbytes;
            left -= lenbytes;
        }
        if (kind == 2) {
            if (left < 1)
                return RT_EPROTO;
            pos++; /* ext type byte */
            left--;
        }
        if (kind == 1 || kind == 2)
            fixed = n;
        if (fixed > left)
            return RT_EPROTO;
        pos += fixed;
        if (kind == 3 || kind == 4) {
            uint64_t elems = kind == 4 ? 2 * n : n;
            if (elems > left)
                return RT_EPROTO;
            if (depth + 1 > S_MAX_DEPTH) /* this container's nesting level */
                return RT_EPROTO;
            if (elems > 0)
                pending[++depth] = elems;
        }
        while (depth >= 0 && pending[depth] == 0)
            depth--;
    }
    return depth < 0 ? RT_OK : RT_EPROTO;
}

/* Unpacks a pre-validated frame that must be consumed whole. */
static int s_unpack(msgpack_unpacked *u, const void *frame, size_t len)
{
    size_t off = 0;
    int rc = rt_wire_prevalidate(frame, len);
    if (rc != RT_OK)
        return rc;
    msgpack_unpack_return r = msgpack_unpack_next(u, frame, len, &off);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return RT_ENOMEM;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return RT_EPROTO;
    return RT_OK;
}

/* ---------------------------------------------------------------------------------
 * Reading an unpacked array: a cursor with a sticky error flag. After any mismatch
 * every read returns a zero value and bad stays set. */

typedef struct {
    const msgpack_object *items; /* the array's elements */
    uint32_t n;                  /* number of elements */
    uint32_t i;                  /* next element */
    bool bad;                    /* a read failed */
} s_cursor_t;

static const msgpack_object s_nil = {.type = MSGPACK_OBJECT_NIL};

/* Opens o as an array of exactly want elements (any size if want is UINT32_MAX). */
static void s_open(s_cursor_t *c, const msgpack_object *o, uint32_t want)
{
    c->items = NULL;
    c->n = c->i = 0;
    c->bad = o->type != MSGPACK_OBJECT_ARRAY || (want != UINT32_MAX && o->via.array.size != want);
    if (!c->bad) {
        c->items = o->via.array.ptr;
        c->n = o->via.array.size;
    }
}

static const msgpack_object *s_next(s_cursor_t *c)
{
    if (c->bad || c->i >= c->n) {
        c->bad = true;
        return &s_nil;
    }
    return &c->items[c->i++];
}

/* Opens the next element as a sub-cursor; a failure marks both. */
static void s_sub(s_cursor_t *c, s_cursor_t *sub, uint32_t want)
{
    s_open(sub, s_next(c), want);
    if (c->bad)
        sub->bad = true;
    if (sub->bad)
        c->bad = true;
}

static uint64_t s_uint(s_cursor_t *c, uint64_t max)
{
    const msgpack_object *o = s_next(c);
    if (c->bad)
        return 0;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        c->bad = true;
        return 0;
    }
    return o->via.u64;
}

static int64_t s_int(s_cursor_t *c, int64_t min, int64_t max)
{
    const msgpack_object *o = s_next(c);
    int64_t v = 0;
    if (c->bad)
        return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX)
        v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 < 0)
        v = o->via.i64;
    else
        c->bad = true;
    if (c->bad || v < min || v > max) {
        c->bad = true;
        return 0;
    }
    return v;
}

static bool s_bool(s_cursor_t *c)
{
    const msgpack_object *o = s_next(c);
    if (c->bad)
        return false;
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        c->bad = true;
        return false;
    }
    return o->via.boolean;
}

/* Checks that o is a str of at most S_MAX_STR bytes without NUL. */
static bool s_is_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size <= S_MAX_STR &&
           (o->via.str.size == 0 || !memchr(o->via.str.ptr, '\0', o->via.str.size));
}

/* Reads a str field; *ptr and *len point into the frame (not NUL-terminated). */
static void s_str(s_cursor_t *c, const char **ptr, uint32_t *len)
{
    const msgpack_object *o = s_next(c);
    *ptr = "";
    *len = 0;
    if (c->bad)
        return;
    if (!s_is_str(o)) {
        c->bad = true;
        return;
    }
    *ptr = o->via.str.ptr;
    *len = o->via.str.size;
}

/* Reads the type tag and checks it is tag, then the version. */
static void s_header(s_cursor_t *c, const char *tag, uint64_t version)
{
    const char *p;
    uint32_t n;
    s_str(c, &p, &n);
    if (!c->bad && (n != strlen(tag) || memcmp(p, tag, n) != 0))
        c->bad = true;
    if (s_uint(c, UINT64_MAX) != version)
        c->bad = true;
}

/* Returns a malloc'd NUL-terminated copy of a str, or NULL. */
static char *s_dup(const char *p, uint32_t n)
{
    char *s = malloc((size_t)n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

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
 * Packing helpers: every pack call goes through a packer with a sticky error. */

typedef struct {
    msgpack_packer pk; /* writes to buf */
    int err;           /* first failure, or 0 */
} s_packer_t;

#define S_PACK(sp, call)                                                                           \
    do {                                                                                           \
        if ((sp)->err == RT_OK && (call) != 0)                                                     \
            (sp)->err = RT_ENOMEM;                                                                 \
    } while (0)

/* Packs a C string of at most S_MAX_STR bytes (NULL packs as ""). */
static void s_pack_cstr(s_packer_t *sp, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > S_MAX_STR) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    S_PACK(sp, msgpack_pack_str_with_body(&sp->pk, s ? s : "", n));
}

static void s_pack_header(s_packer_t *sp, const char *tag, uint8_t version, size_t nfields)
{
    S_PACK(sp, msgpack_pack_array(&sp->pk, nfields + 2));
    s_pack_cstr(sp, tag);
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, version));
}

/* ---------------------------------------------------------------------------------
 * Record builder. */

struct rt_record_builder_t {
    msgpack_sbuffer changes; /* packed changes, back to back */
    msgpack_sbuffer rels;    /* packed relation descriptors, back to back */
    msgpack_sbuffer out;     /* the finished frame */
    s_packer_t cpk;          /* packs into changes; err is the builder's sticky error */
    s_packer_t rpk;          /* packs into rels */
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
        if (n > S_MAX_STR) {
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
    s_packer_t *sp = &self->rpk;
    S_PACK(sp, msgpack_pack_array(&sp->pk, 4));
    s_pack_cstr(sp, rel->schema);
    s_pack_cstr(sp, rel->table);
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, (uint8_t)rel->replident));
    S_PACK(sp, msgpack_pack_array(&sp->pk, rel->ncols));
    for (uint32_t i = 0; i < rel->ncols && sp->err == RT_OK; i++) {
        const rt_column_t *col = &rel->cols[i];
        S_PACK(sp, msgpack_pack_array(&sp->pk, 4));
        s_pack_cstr(sp, col->name);
        S_PACK(sp, msgpack_pack_uint32(&sp->pk, col->typoid));
        S_PACK(sp, msgpack_pack_int32(&sp->pk, col->typmod));
        S_PACK(sp, col->key ? msgpack_pack_true(&sp->pk) : msgpack_pack_false(&sp->pk));
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
    s_packer_t *sp = &self->cpk;
    switch (v->kind) {
    case RT_VAL_NULL: S_PACK(sp, msgpack_pack_nil(&sp->pk)); break;
    case RT_VAL_UNCHANGED: S_PACK(sp, msgpack_pack_false(&sp->pk)); break;
    case RT_VAL_TEXT:
        if ((v->len && !v->data) || v->len >= RT_WIRE_MAX_RECORD ||
            (v->len && memchr(v->data, '\0', v->len))) {
            s_fail(self, RT_EINVAL);
            return;
        }
        S_PACK(sp, msgpack_pack_bin(&sp->pk, (size_t)v->len + 1));
        if (v->len)
            S_PACK(sp, msgpack_pack_bin_body(&sp->pk, v->data, v->len));
        S_PACK(sp, msgpack_pack_bin_body(&sp->pk, "", 1));
        break;
    default: s_fail(self, RT_EINVAL); return;
    }
}

static void s_pack_row(rt_record_builder_t *self, uint32_t ncols, const rt_value_t *vals)
{
    s_packer_t *sp = &self->cpk;
    S_PACK(sp, msgpack_pack_array(&sp->pk, ncols));
    for (uint32_t i = 0; i < ncols && sp->err == RT_OK; i++)
        s_pack_row_value(self, &vals[i]);
}

void rt_record_builder_insert(rt_record_builder_t *self, uint32_t rel, uint32_t ncols,
                              const rt_value_t *newvals)
{
    s_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK || !s_check_row(self, rel, ncols, newvals))
        return;
    S_PACK(sp, msgpack_pack_array(&sp->pk, 3));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, 'I'));
    S_PACK(sp, msgpack_pack_uint32(&sp->pk, rel));
    s_pack_row(self, ncols, newvals);
    self->nchanges++;
}

void rt_record_builder_update(rt_record_builder_t *self, uint32_t rel, char old_kind, uint32_t nold,
                              const rt_value_t *oldvals, uint32_t nnew, const rt_value_t *newvals)
{
    s_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK || !s_check_row(self, rel, nnew, newvals))
        return;
    if (old_kind == 0 ? nold != 0 : (old_kind != 'K' && old_kind != 'O')) {
        s_fail(self, RT_EINVAL);
        return;
    }
    if (old_kind && !s_check_row(self, rel, nold, oldvals))
        return;
    S_PACK(sp, msgpack_pack_array(&sp->pk, 5));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, 'U'));
    S_PACK(sp, msgpack_pack_uint32(&sp->pk, rel));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, (uint8_t)old_kind));
    if (old_kind)
        s_pack_row(self, nold, oldvals);
    else
        S_PACK(sp, msgpack_pack_nil(&sp->pk));
    s_pack_row(self, nnew, newvals);
    self->nchanges++;
}

void rt_record_builder_delete(rt_record_builder_t *self, uint32_t rel, char old_kind, uint32_t nold,
                              const rt_value_t *oldvals)
{
    s_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if (old_kind != 'K' && old_kind != 'O') {
        s_fail(self, RT_EINVAL);
        return;
    }
    if (!s_check_row(self, rel, nold, oldvals))
        return;
    S_PACK(sp, msgpack_pack_array(&sp->pk, 4));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, 'D'));
    S_PACK(sp, msgpack_pack_uint32(&sp->pk, rel));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, (uint8_t)old_kind));
    s_pack_row(self, nold, oldvals);
    self->nchanges++;
}

void rt_record_builder_truncate(rt_record_builder_t *self, uint8_t flags, uint32_t nrels,
                                const uint32_t *rels)
{
    s_packer_t *sp = &self->cpk;
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
    S_PACK(sp, msgpack_pack_array(&sp->pk, 3));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, 'T'));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, flags));
    S_PACK(sp, msgpack_pack_array(&sp->pk, nrels));
    for (uint32_t i = 0; i < nrels; i++)
        S_PACK(sp, msgpack_pack_uint32(&sp->pk, rels[i]));
    self->nchanges++;
}

void rt_record_builder_sequence(rt_record_builder_t *self, const char *schema, const char *name,
                                int64_t last_value)
{
    s_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if (!schema || !name) {
        s_fail(self, RT_EINVAL);
        return;
    }
    S_PACK(sp, msgpack_pack_array(&sp->pk, 4));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, 'Q'));
    s_pack_cstr(sp, schema);
    s_pack_cstr(sp, name);
    S_PACK(sp, msgpack_pack_int64(&sp->pk, last_value));
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
    s_packer_t *sp = &self->cpk;
    if (sp->err != RT_OK)
        return;
    if (!ddl || !ddl->tag || !ddl->search_path || !ddl->objects || !ddl->command ||
        (ddl->flags & ~RT_DDL_FLAGS)) {
        s_fail(self, RT_EINVAL);
        return;
    }
    S_PACK(sp, msgpack_pack_array(&sp->pk, 6));
    S_PACK(sp, msgpack_pack_uint8(&sp->pk, 'L'));
    s_pack_cstr(sp, ddl->tag);
    S_PACK(sp, msgpack_pack_uint32(&sp->pk, ddl->flags));
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
    s_packer_t out = {.err = self->cpk.err};
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
    s_pack_header(&out, "REC", RT_WIRE_VERSION, S_REC_FIELDS - 2);
    S_PACK(&out, msgpack_pack_uint64(&out.pk, self->seq));
    S_PACK(&out, msgpack_pack_uint32(&out.pk, self->xid));
    S_PACK(&out, msgpack_pack_uint8(&out.pk, flags));
    S_PACK(&out, msgpack_pack_uint64(&out.pk, self->commit_lsn));
    S_PACK(&out, msgpack_pack_uint64(&out.pk, end_lsn));
    S_PACK(&out, msgpack_pack_int64(&out.pk, self->commit_ts));
    if (self->has_origin)
        s_pack_cstr(&out, self->origin);
    else
        S_PACK(&out, msgpack_pack_nil(&out.pk));
    S_PACK(&out, msgpack_pack_array(&out.pk, self->nrels));
    S_PACK(&out, msgpack_sbuffer_write(&self->out, self->rels.data, self->rels.size));
    S_PACK(&out, msgpack_pack_array(&out.pk, self->nchanges));
    S_PACK(&out, msgpack_sbuffer_write(&self->out, self->changes.data, self->changes.size));
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
static const char *s_name(rt_record_decoder_t *self, s_cursor_t *c)
{
    const char *p;
    uint32_t n;
    s_str(c, &p, &n);
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

static int s_decode_rels(rt_record_decoder_t *self, s_cursor_t *rc)
{
    rt_record_t *rec = &self->rec;
    s_cursor_t rels;
    size_t ncols_total = 0;
    void *buf;

    s_sub(rc, &rels, UINT32_MAX);
    if (rels.bad)
        return RT_EPROTO;
    buf = self->rels;
    if (s_reserve(&buf, &self->rels_cap, rels.n, sizeof *self->rels) != RT_OK)
        return RT_ENOMEM;
    self->rels = buf;
    for (uint32_t i = 0; i < rels.n; i++) {
        rt_relation_t *rel = &self->rels[i];
        s_cursor_t rc1, cols;
        s_sub(&rels, &rc1, 4);
        rel->schema = s_name(self, &rc1);
        rel->table = s_name(self, &rc1);
        uint64_t ri = s_uint(&rc1, 0x7f);
        if (!rc1.bad && !(ri == 'd' || ri == 'n' || ri == 'f' || ri == 'i'))
            rc1.bad = true;
        rel->replident = (char)ri;
        s_sub(&rc1, &cols, UINT32_MAX);
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
            s_cursor_t cc;
            s_sub(&cols, &cc, 4);
            col->name = s_name(self, &cc);
            col->typoid = (uint32_t)s_uint(&cc, UINT32_MAX);
            col->typmod = (int32_t)s_int(&cc, INT32_MIN, INT32_MAX);
            col->key = s_bool(&cc);
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

/* A text value: a bin with a terminating NUL and none inside. */
static bool s_is_text(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size >= 1 &&
           o->via.bin.ptr[o->via.bin.size - 1] == '\0' &&
           !memchr(o->via.bin.ptr, '\0', o->via.bin.size - 1);
}

/* Reads a row of ncols values into the values pool at *used. */
static int s_decode_row(rt_record_decoder_t *self, s_cursor_t *cc, uint32_t ncols, size_t *used)
{
    s_cursor_t row;
    void *buf = self->values;

    s_sub(cc, &row, ncols);
    if (row.bad)
        return RT_EPROTO;
    if (s_reserve(&buf, &self->values_cap, *used + ncols, sizeof *self->values))
        return RT_ENOMEM;
    self->values = buf;
    for (uint32_t i = 0; i < ncols; i++) {
        const msgpack_object *o = s_next(&row);
        rt_value_t *v = &self->values[*used + i];
        v->len = 0;
        v->data = NULL;
        if (o->type == MSGPACK_OBJECT_NIL) {
            v->kind = RT_VAL_NULL;
        } else if (o->type == MSGPACK_OBJECT_BOOLEAN && !o->via.boolean) {
            v->kind = RT_VAL_UNCHANGED;
        } else if (s_is_text(o)) {
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
static const char *s_text(s_cursor_t *c)
{
    const msgpack_object *o = s_next(c);
    if (c->bad)
        return "";
    if (!s_is_text(o)) {
        c->bad = true;
        return "";
    }
    return o->via.bin.ptr;
}

static int s_decode_changes(rt_record_decoder_t *self, s_cursor_t *rc)
{
    rt_record_t *rec = &self->rec;
    s_cursor_t changes;
    size_t nvalues = 0, ntruncs = 0, nseqs = 0;
    void *buf;
    int err;

    s_sub(rc, &changes, UINT32_MAX);
    if (changes.bad)
        return RT_EPROTO;
    buf = self->changes;
    if (s_reserve(&buf, &self->changes_cap, changes.n, sizeof *self->changes) != RT_OK)
        return RT_ENOMEM;
    self->changes = buf;
    uint32_t nddls = 0;
    for (uint32_t i = 0; i < changes.n; i++) {
        rt_change_t *ch = &self->changes[i];
        s_cursor_t cc;
        memset(ch, 0, sizeof *ch);
        s_sub(&changes, &cc, UINT32_MAX);
        uint64_t op = s_uint(&cc, 0x7f);
        if (cc.bad)
            return RT_EPROTO;
        ch->op = (char)op;
        if (op == 'Q') {
            if (cc.n != 4)
                return RT_EPROTO;
            ch->seq_schema = s_name(self, &cc);
            ch->seq_name = s_name(self, &cc);
            ch->seq_value = s_int(&cc, INT64_MIN, INT64_MAX);
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
            d->flags = (uint32_t)s_uint(&cc, RT_DDL_FLAGS);
            d->search_path = s_text(&cc);
            d->objects = s_text(&cc);
            d->command = s_text(&cc);
            if (cc.bad || !d->tag[0] || !d->command[0])
                return RT_EPROTO;
            ch->ddl = d;
            continue;
        }
        if (op == 'T') {
            s_cursor_t rels;
            if (cc.n != 3)
                return RT_EPROTO;
            ch->trunc_flags = (uint8_t)s_uint(&cc, 3);
            s_sub(&cc, &rels, UINT32_MAX);
            if (cc.bad)
                return RT_EPROTO;
            buf = self->truncs;
            if (s_reserve(&buf, &self->truncs_cap, ntruncs + rels.n, sizeof *self->truncs))
                return RT_ENOMEM;
            self->truncs = buf;
            for (uint32_t j = 0; j < rels.n; j++)
                self->truncs[ntruncs + j] = (uint32_t)s_uint(&rels, rec->nrels - 1u);
            if (rels.bad || (rels.n && rec->nrels == 0))
                return RT_EPROTO;
            ch->ntrunc = rels.n;
            ntruncs += rels.n;
            continue;
        }
        uint32_t want = op == 'I' ? 3 : op == 'U' ? 5 : op == 'D' ? 4 : 0;
        if (want == 0 || cc.n != want || rec->nrels == 0)
            return RT_EPROTO;
        ch->rel = (uint32_t)s_uint(&cc, rec->nrels - 1u);
        if (op != 'I') {
            uint64_t kind = s_uint(&cc, 0x7f);
            if (!(kind == 'K' || kind == 'O' || (op == 'U' && kind == 0)))
                return RT_EPROTO;
            ch->old_kind = (char)kind;
        }
        if (cc.bad)
            return RT_EPROTO;
        uint32_t ncols = rec->rels[ch->rel].ncols;
        if (op == 'U' && ch->old_kind == 0) {
            if (s_next(&cc)->type != MSGPACK_OBJECT_NIL)
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
    s_cursor_t c;
    void *buf;
    int err;

    *rec = NULL;
    memset(r, 0, sizeof *r);
    self->names_used = 0;
    msgpack_unpacked_init(&u);
    if ((err = s_unpack(&u, frame, len)) != RT_OK)
        goto cleanup;
    err = RT_EPROTO;
    s_open(&c, &u.data, S_REC_FIELDS);
    if (c.bad)
        goto cleanup;
    buf = self->names;
    if (s_reserve(&buf, &self->names_cap, s_names_need(&c.items[8], &c.items[9], &c.items[10]),
                  1)) {
        err = RT_ENOMEM;
        goto cleanup;
    }
    self->names = buf;

    s_header(&c, "REC", RT_WIRE_VERSION);
    r->seq = s_uint(&c, UINT64_MAX);
    r->xid = (uint32_t)s_uint(&c, UINT32_MAX);
    r->flags = (uint8_t)s_uint(&c, RT_REC_FIRST | RT_REC_LAST);
    r->commit_lsn = s_uint(&c, UINT64_MAX);
    r->end_lsn = s_uint(&c, UINT64_MAX);
    r->commit_ts = s_int(&c, INT64_MIN, INT64_MAX);
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

/* ---------------------------------------------------------------------------------
 * Control messages, table-driven: each type has a tag and a field signature, one
 * character per field after the version, mapped to an rt_msg_t member:
 *   's' str -> char *      'u' uint -> uint64_t      'b' bool -> bool
 *   'i' int -> int64_t     'e' uint <= RT_SUB_LAST_STATE -> int64_t (a subscriber state)
 *   'x' bin -> data, datalen (the member named is data)
 *   'T' the tables of a SYNC_READY -> tables, ntables (the member named is tables)
 *   'P' [6 uints] -> an rt_copy_progress_t
 *   'D' the tables of a SCHEMA -> ddl, nddl (the member named is ddl); pre and post str
 *   'E' the tables of a SCHEMA_READY: the same, pre and post text (bin, any length)
 *   't' text (bin with a terminating NUL, any length) -> char * (NULL packs as "") */

#define S_MAX_FIELDS 6

typedef struct {
    int type;                 /* rt_msg_type_t */
    const char *tag;          /* the frame's type tag */
    const char *sig;          /* field signature */
    size_t off[S_MAX_FIELDS]; /* offsetof the rt_msg_t member of each field */
    uint8_t version;          /* its version when not RT_WIRE_VERSION (0) */
} s_msg_spec_t;

/* A message's version: RT_WIRE_VERSION unless its spec says otherwise. */
static uint8_t s_msg_version(const s_msg_spec_t *spec)
{
    return spec->version ? spec->version : RT_WIRE_VERSION;
}

#define S_OFF(m) offsetof(rt_msg_t, m)

static const s_msg_spec_t s_msg_specs[] = {
    {.type = RT_MSG_HELLO, .tag = "HELLO", .sig = "su", .off = {S_OFF(name), S_OFF(seq)}},
    /* Version 2: the publisher's run. The first entry of a type is the one encoded; a
     * later one with the same tag is an older version, still decoded. */
    {.type = RT_MSG_WELCOME,
     .tag = "WELCOME",
     .sig = "ssuubu",
     .off = {S_OFF(source), S_OFF(endpoint), S_OFF(first_seq), S_OFF(head_seq), S_OFF(paused),
             S_OFF(run_id)},
     .version = 2},
    {.type = RT_MSG_WELCOME,
     .tag = "WELCOME",
     .sig = "ssuub",
     .off = {S_OFF(source), S_OFF(endpoint), S_OFF(first_seq), S_OFF(head_seq), S_OFF(paused)}},
    {.type = RT_MSG_FETCH, .tag = "FETCH", .sig = "uu", .off = {S_OFF(seq), S_OFF(count)}},
    {.type = RT_MSG_FETCHED,
     .tag = "FETCHED",
     .sig = "uuuu",
     .off = {S_OFF(seq), S_OFF(last_seq), S_OFF(head_seq), S_OFF(run_id)},
     .version = 2},
    {.type = RT_MSG_FETCHED,
     .tag = "FETCHED",
     .sig = "uuu",
     .off = {S_OFF(seq), S_OFF(last_seq), S_OFF(head_seq)}},
    {.type = RT_MSG_ACK,
     .tag = "ACK",
     .sig = "ueuiis",
     .off = {S_OFF(seq), S_OFF(state), S_OFF(conflicts), S_OFF(commit_ts), S_OFF(applied_at),
             S_OFF(text)}},
    {.type = RT_MSG_HUGZ,
     .tag = "HUGZ",
     .sig = "uu",
     .off = {S_OFF(head_seq), S_OFF(run_id)},
     .version = 2},
    {.type = RT_MSG_HUGZ, .tag = "HUGZ", .sig = "u", .off = {S_OFF(head_seq)}},
    {.type = RT_MSG_LIVE, .tag = "LIVE", .sig = "uu", .off = {S_OFF(run_id), S_OFF(head_seq)}},
    {.type = RT_MSG_ERROR, .tag = "ERROR", .sig = "is", .off = {S_OFF(code), S_OFF(text)}},
    {.type = RT_MSG_PING, .tag = "PING", .sig = "", .off = {0}},
    {.type = RT_MSG_PONG, .tag = "PONG", .sig = "su", .off = {S_OFF(source), S_OFF(head_seq)}},
    {.type = RT_MSG_STATUS, .tag = "STATUS", .sig = "", .off = {0}},
    {.type = RT_MSG_PAUSE, .tag = "PAUSE", .sig = "s", .off = {S_OFF(name)}},
    {.type = RT_MSG_RESUME, .tag = "RESUME", .sig = "s", .off = {S_OFF(name)}},
    {.type = RT_MSG_OK, .tag = "OK", .sig = "s", .off = {S_OFF(text)}},
    {.type = RT_MSG_FORGET, .tag = "FORGET", .sig = "su", .off = {S_OFF(name), S_OFF(flags)}},
    {.type = RT_MSG_REPLAY,
     .tag = "REPLAY",
     .sig = "suuiu",
     .off = {S_OFF(name), S_OFF(seq), S_OFF(last_seq), S_OFF(commit_ts), S_OFF(flags)}},
    {.type = RT_MSG_SYNC,
     .tag = "SYNC",
     .sig = "suuu",
     .off = {S_OFF(name), S_OFF(seq), S_OFF(count), S_OFF(flags)}},
    {.type = RT_MSG_SYNC_READY,
     .tag = "SYNC_READY",
     .sig = "uuuTs",
     .off = {S_OFF(sync_id), S_OFF(seq), S_OFF(lsn), S_OFF(tables), S_OFF(text)}},
    {.type = RT_MSG_SYNC_KEEP,
     .tag = "SYNC_KEEP",
     .sig = "suP",
     .off = {S_OFF(name), S_OFF(sync_id), S_OFF(progress)}},
    {.type = RT_MSG_SYNC_END, .tag = "SYNC_END", .sig = "su", .off = {S_OFF(name), S_OFF(sync_id)}},
    {.type = RT_MSG_COPY,
     .tag = "COPY",
     .sig = "suuuu",
     .off = {S_OFF(name), S_OFF(sync_id), S_OFF(table), S_OFF(count), S_OFF(flags)}},
    {.type = RT_MSG_COPY_DATA,
     .tag = "COPY_DATA",
     .sig = "uux",
     .off = {S_OFF(sync_id), S_OFF(table), S_OFF(data)}},
    {.type = RT_MSG_COPY_DONE,
     .tag = "COPY_DONE",
     .sig = "uuu",
     .off = {S_OFF(sync_id), S_OFF(table), S_OFF(count)}},
    {.type = RT_MSG_RESYNC, .tag = "RESYNC", .sig = "ss", .off = {S_OFF(name), S_OFF(text)}},
    {.type = RT_MSG_SCHEMA,
     .tag = "SCHEMA",
     .sig = "suD",
     .off = {S_OFF(name), S_OFF(sync_id), S_OFF(ddl)}},
    /* Version 2: definitions as text fields of any length; 3: the support script. */
    {.type = RT_MSG_SCHEMA_READY,
     .tag = "SCHEMA_READY",
     .sig = "uEt",
     .off = {S_OFF(sync_id), S_OFF(ddl), S_OFF(text)},
     .version = 3},
    {.type = RT_MSG_SKIP, .tag = "SKIP", .sig = "su", .off = {S_OFF(name), S_OFF(seq)}},
};

#define S_NSPECS (sizeof s_msg_specs / sizeof s_msg_specs[0])

static const s_msg_spec_t *s_spec_of_type(int type)
{
    for (size_t i = 0; i < S_NSPECS; i++)
        if (s_msg_specs[i].type == type)
            return &s_msg_specs[i];
    return NULL;
}

/* The spec of a type at a version, or NULL if that version is not known. */
static const s_msg_spec_t *s_spec_of_version(int type, uint64_t version)
{
    for (size_t i = 0; i < S_NSPECS; i++)
        if (s_msg_specs[i].type == type && s_msg_version(&s_msg_specs[i]) == version)
            return &s_msg_specs[i];
    return NULL;
}

const char *rt_msg_type_name(int type)
{
    const s_msg_spec_t *spec = s_spec_of_type(type);
    return spec ? spec->tag : "UNKNOWN";
}

static const char *s_sub_state_names[] = {"streaming", "catching-up", "paused",
                                          "error",     "offline",     "copying"};

const char *rt_security_name(int64_t security)
{
    static const char *const names[] = {"loopback", "curve", "insecure"};
    return security >= 0 && security <= RT_SECURITY_INSECURE ? names[security] : "?";
}

const char *rt_capture_state_name(int64_t state)
{
    switch (state) {
    case RT_CAPTURE_STREAMING: return "streaming";
    case RT_CAPTURE_DISCONNECTED: return "disconnected";
    case RT_CAPTURE_BLOCKED: return "blocked (outbox full)";
    case RT_CAPTURE_NONE: return "none";
    default: return "unknown";
    }
}

const char *rt_sub_state_name(int state)
{
    if (state < RT_SUB_STREAMING || state > RT_SUB_LAST_STATE)
        return "unknown";
    return s_sub_state_names[state];
}

static void s_progress_pack(s_packer_t *sp, const rt_copy_progress_t *p)
{
    const uint64_t v[] = {p->tables_done, p->tables_total, p->rows,
                          p->bytes,       p->bytes_total,  p->elapsed_ms};
    S_PACK(sp, msgpack_pack_array(&sp->pk, 6));
    for (size_t i = 0; i < 6; i++)
        S_PACK(sp, msgpack_pack_uint64(&sp->pk, v[i]));
}

static void s_progress_decode(s_cursor_t *c, rt_copy_progress_t *p)
{
    s_cursor_t pc;
    s_sub(c, &pc, 6);
    uint64_t *v[] = {&p->tables_done, &p->tables_total, &p->rows,
                     &p->bytes,       &p->bytes_total,  &p->elapsed_ms};
    for (size_t i = 0; i < 6; i++)
        *v[i] = s_uint(&pc, UINT64_MAX);
    if (pc.bad || p->tables_done > p->tables_total)
        c->bad = true;
}

void rt_sync_tables_free(rt_sync_table_t *tables, size_t ntables)
{
    for (size_t i = 0; tables && i < ntables; i++) {
        for (uint32_t j = 0; tables[i].cols && j < tables[i].ncols; j++) {
            free(tables[i].cols[j].name);
            free(tables[i].cols[j].type);
        }
        free(tables[i].cols);
        free(tables[i].schema);
        free(tables[i].table);
    }
    free(tables);
}

/* Reads a str field as a malloc'd NUL-terminated copy: NULL and c->bad on a bad field,
 * NULL and *enomem when out of memory. */
static char *s_str_dup(s_cursor_t *c, bool *enomem)
{
    const char *p;
    uint32_t n;
    s_str(c, &p, &n);
    if (c->bad)
        return NULL;
    char *d = s_dup(p, n);
    if (!d)
        *enomem = true;
    return d;
}

/* tables: [[schema, table, relkind, bytes, first_page, end_page, [[name, type, typoid],
 * ...]], ...]. RT_OK
 * (c->bad on a malformed list) or RT_ENOMEM; msg owns whatever was read. */
static int s_decode_tables(s_cursor_t *c, rt_msg_t *msg)
{
    s_cursor_t tc;
    bool enomem = false;
    s_sub(c, &tc, UINT32_MAX);
    if (c->bad || tc.n > RT_SYNC_MAX_TABLES) {
        c->bad = true;
        return RT_OK;
    }
    if (tc.n && !(msg->tables = calloc(tc.n, sizeof *msg->tables)))
        return RT_ENOMEM;
    msg->ntables = tc.n;
    for (uint32_t i = 0; i < tc.n && !c->bad && !enomem; i++) {
        rt_sync_table_t *t = &msg->tables[i];
        s_cursor_t one, cols;
        s_sub(&tc, &one, 7);
        t->schema = s_str_dup(&one, &enomem);
        t->table = s_str_dup(&one, &enomem);
        const char *kind;
        uint32_t klen;
        s_str(&one, &kind, &klen);
        if (!one.bad && (klen != 1 || (kind[0] != 'r' && kind[0] != 'p')))
            one.bad = true;
        t->relkind = one.bad ? 0 : kind[0];
        t->bytes = s_uint(&one, UINT64_MAX);
        t->first_page = s_uint(&one, UINT32_MAX);
        t->end_page = s_uint(&one, UINT32_MAX);
        if (!one.bad && t->end_page && (t->end_page <= t->first_page || t->relkind != 'r'))
            one.bad = true;
        if (!one.bad && t->first_page && t->relkind != 'r')
            one.bad = true;
        s_sub(&one, &cols, UINT32_MAX);
        if (!one.bad && (cols.n == 0 || cols.n > RT_SYNC_MAX_COLUMNS))
            one.bad = true;
        if (!one.bad && !enomem && !(t->cols = calloc(cols.n, sizeof *t->cols)))
            enomem = true;
        if (!one.bad && !enomem)
            t->ncols = cols.n;
        for (uint32_t j = 0; j < t->ncols && !one.bad && !enomem; j++) {
            s_cursor_t col;
            s_sub(&cols, &col, 3);
            t->cols[j].name = s_str_dup(&col, &enomem);
            t->cols[j].type = s_str_dup(&col, &enomem);
            t->cols[j].typoid = (uint32_t)s_uint(&col, UINT32_MAX);
            if (col.bad || col.i != col.n || (!enomem && !t->cols[j].name[0]))
                one.bad = true;
        }
        if (one.bad || one.i != one.n || (!enomem && (!t->schema[0] || !t->table[0])))
            c->bad = true;
    }
    return enomem ? RT_ENOMEM : RT_OK;
}

void rt_sync_ddl_free(rt_sync_ddl_t *ddl, size_t n)
{
    for (size_t i = 0; ddl && i < n; i++) {
        free(ddl[i].schema);
        free(ddl[i].table);
        free(ddl[i].pre);
        free(ddl[i].post);
    }
    free(ddl);
}

/* ddl: [[schema, table, pre, post], ...]. RT_OK (c->bad on a malformed list) or
 * RT_ENOMEM; msg owns whatever was read. */
/* A malloc'd copy of a text field (bin, as a row's text value), or NULL (c->bad, or
 * *enomem). */
static char *s_text_dup(s_cursor_t *c, bool *enomem)
{
    const msgpack_object *o = s_next(c);
    if (c->bad)
        return NULL;
    if (!s_is_text(o)) {
        c->bad = true;
        return NULL;
    }
    char *d = s_dup(o->via.bin.ptr, o->via.bin.size - 1);
    if (!d)
        *enomem = true;
    return d;
}

/* text: pre and post are text fields (SCHEMA_READY), else str (SCHEMA). */
static int s_decode_ddl(s_cursor_t *c, rt_msg_t *msg, bool text)
{
    s_cursor_t dc;
    bool enomem = false;
    s_sub(c, &dc, UINT32_MAX);
    if (c->bad || dc.n > RT_SYNC_MAX_TABLES) {
        c->bad = true;
        return RT_OK;
    }
    if (dc.n && !(msg->ddl = calloc(dc.n, sizeof *msg->ddl)))
        return RT_ENOMEM;
    msg->nddl = dc.n;
    for (uint32_t i = 0; i < dc.n && !c->bad && !enomem; i++) {
        rt_sync_ddl_t *d = &msg->ddl[i];
        s_cursor_t one;
        s_sub(&dc, &one, 4);
        d->schema = s_str_dup(&one, &enomem);
        d->table = s_str_dup(&one, &enomem);
        d->pre = text ? s_text_dup(&one, &enomem) : s_str_dup(&one, &enomem);
        d->post = text ? s_text_dup(&one, &enomem) : s_str_dup(&one, &enomem);
        if (one.bad || one.i != one.n || (!enomem && (!d->schema[0] || !d->table[0])))
            c->bad = true;
    }
    return enomem ? RT_ENOMEM : RT_OK;
}

/* Packs text as a row's text value: a bin with a terminating NUL (NULL packs as ""). */
static void s_pack_bintext(s_packer_t *sp, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    S_PACK(sp, msgpack_pack_bin(&sp->pk, n + 1));
    if (n)
        S_PACK(sp, msgpack_pack_bin_body(&sp->pk, s, n));
    S_PACK(sp, msgpack_pack_bin_body(&sp->pk, "", 1));
}

static void s_pack_ddl(s_packer_t *sp, const rt_msg_t *msg, bool text)
{
    if (msg->nddl > RT_SYNC_MAX_TABLES) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    S_PACK(sp, msgpack_pack_array(&sp->pk, msg->nddl));
    for (size_t i = 0; i < msg->nddl; i++) {
        const rt_sync_ddl_t *d = &msg->ddl[i];
        if (!d->schema || !d->schema[0] || !d->table || !d->table[0]) {
            if (sp->err == RT_OK)
                sp->err = RT_EINVAL;
            return;
        }
        S_PACK(sp, msgpack_pack_array(&sp->pk, 4));
        s_pack_cstr(sp, d->schema);
        s_pack_cstr(sp, d->table);
        if (text) {
            s_pack_bintext(sp, d->pre);
            s_pack_bintext(sp, d->post);
        } else {
            s_pack_cstr(sp, d->pre ? d->pre : "");
            s_pack_cstr(sp, d->post ? d->post : "");
        }
    }
}

static void s_pack_tables(s_packer_t *sp, const rt_msg_t *msg)
{
    if (msg->ntables > RT_SYNC_MAX_TABLES) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    S_PACK(sp, msgpack_pack_array(&sp->pk, msg->ntables));
    for (size_t i = 0; i < msg->ntables; i++) {
        const rt_sync_table_t *t = &msg->tables[i];
        if ((t->relkind != 'r' && t->relkind != 'p') || t->ncols == 0 ||
            t->ncols > RT_SYNC_MAX_COLUMNS || t->first_page > UINT32_MAX ||
            t->end_page > UINT32_MAX || (t->end_page && t->end_page <= t->first_page) ||
            ((t->first_page || t->end_page) && t->relkind != 'r')) {
            if (sp->err == RT_OK)
                sp->err = RT_EINVAL;
            return;
        }
        S_PACK(sp, msgpack_pack_array(&sp->pk, 7));
        s_pack_cstr(sp, t->schema);
        s_pack_cstr(sp, t->table);
        S_PACK(sp, msgpack_pack_str_with_body(&sp->pk, &t->relkind, 1));
        S_PACK(sp, msgpack_pack_uint64(&sp->pk, t->bytes));
        S_PACK(sp, msgpack_pack_uint64(&sp->pk, t->first_page));
        S_PACK(sp, msgpack_pack_uint64(&sp->pk, t->end_page));
        S_PACK(sp, msgpack_pack_array(&sp->pk, t->ncols));
        for (uint32_t j = 0; j < t->ncols; j++) {
            S_PACK(sp, msgpack_pack_array(&sp->pk, 3));
            s_pack_cstr(sp, t->cols[j].name);
            s_pack_cstr(sp, t->cols[j].type);
            S_PACK(sp, msgpack_pack_uint32(&sp->pk, t->cols[j].typoid));
        }
    }
}

int rt_msg_peek_type(const void *frame, size_t len)
{
    const unsigned char *p = frame;
    size_t pos = 1, n;

    if (!p || len < 2)
        return RT_MSG_UNKNOWN;
    if (p[0] >= 0x91 && p[0] <= 0x9f)
        pos = 1;
    else if (p[0] == 0xdc && len > 3 && (p[1] | p[2]))
        pos = 3;
    else if (p[0] == 0xdd && len > 5 && (p[1] | p[2] | p[3] | p[4]))
        pos = 5;
    else
        return RT_MSG_UNKNOWN;
    if (p[pos] >= 0xa0 && p[pos] <= 0xbf) {
        n = p[pos] & 0x1f;
        pos += 1;
    } else if (p[pos] == 0xd9 && len - pos >= 2) {
        n = p[pos + 1];
        pos += 2;
    } else {
        return RT_MSG_UNKNOWN;
    }
    if (n > len - pos)
        return RT_MSG_UNKNOWN;
    if (n == 3 && memcmp(p + pos, "REC", 3) == 0)
        return RT_MSG_REC;
    if (n == 12 && memcmp(p + pos, "STATUS_REPLY", 12) == 0)
        return RT_MSG_STATUS_REPLY;
    for (size_t i = 0; i < S_NSPECS; i++) {
        const char *tag = s_msg_specs[i].tag;
        if (strlen(tag) == n && memcmp(p + pos, tag, n) == 0)
            return s_msg_specs[i].type;
    }
    return RT_MSG_UNKNOWN;
}

void rt_msg_clear(rt_msg_t *msg)
{
    if (!msg)
        return;
    free(msg->name);
    free(msg->source);
    free(msg->endpoint);
    free(msg->text);
    free(msg->data);
    rt_sync_tables_free(msg->tables, msg->ntables);
    rt_sync_ddl_free(msg->ddl, msg->nddl);
    memset(msg, 0, sizeof *msg);
}

int rt_msg_decode(const void *frame, size_t len, rt_msg_t *msg)
{
    msgpack_unpacked u;
    const s_msg_spec_t *spec;
    s_cursor_t c;
    int err;

    memset(msg, 0, sizeof *msg);
    int type = rt_msg_peek_type(frame, len);
    if (!s_spec_of_type(type))
        return RT_EPROTO;
    msgpack_unpacked_init(&u);
    if ((err = s_unpack(&u, frame, len)) != RT_OK)
        goto cleanup;
    /* The version picks the layout (a peer may run an older rt). */
    err = RT_EPROTO;
    if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size < 2 ||
        u.data.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        !(spec = s_spec_of_version(type, u.data.via.array.ptr[1].via.u64)))
        goto cleanup;
    err = RT_OK;
    s_open(&c, &u.data, (uint32_t)strlen(spec->sig) + 2);
    s_header(&c, spec->tag, s_msg_version(spec));
    for (size_t i = 0; spec->sig[i] && !c.bad; i++) {
        char *field = (char *)msg + spec->off[i];
        const char *p;
        uint32_t n;
        switch (spec->sig[i]) {
        case 's':
            s_str(&c, &p, &n);
            if (c.bad)
                break;
            if (!(*(char **)field = s_dup(p, n))) {
                err = RT_ENOMEM;
                goto cleanup;
            }
            break;
        case 't': {
            bool enomem = false;
            *(char **)field = s_text_dup(&c, &enomem);
            if (enomem) {
                err = RT_ENOMEM;
                goto cleanup;
            }
            break;
        }
        case 'u': *(uint64_t *)field = s_uint(&c, UINT64_MAX); break;
        case 'i': *(int64_t *)field = s_int(&c, INT64_MIN, INT64_MAX); break;
        case 'e': *(int64_t *)field = (int64_t)s_uint(&c, RT_SUB_LAST_STATE); break;
        case 'b': *(bool *)field = s_bool(&c); break;
        case 'x': {
            const msgpack_object *o = s_next(&c);
            if (c.bad || o->type != MSGPACK_OBJECT_BIN) {
                c.bad = true;
                break;
            }
            if (!(msg->data = malloc(o->via.bin.size ? o->via.bin.size : 1))) {
                err = RT_ENOMEM;
                goto cleanup;
            }
            if (o->via.bin.size)
                memcpy(msg->data, o->via.bin.ptr, o->via.bin.size);
            msg->datalen = o->via.bin.size;
            break;
        }
        case 'T':
            if ((err = s_decode_tables(&c, msg)) == RT_ENOMEM)
                goto cleanup;
            break;
        case 'P': s_progress_decode(&c, (rt_copy_progress_t *)field); break;
        case 'D':
        case 'E':
            if ((err = s_decode_ddl(&c, msg, spec->sig[i] == 'E')) == RT_ENOMEM)
                goto cleanup;
            break;
        }
    }
    err = c.bad ? RT_EPROTO : RT_OK;
    if (err == RT_OK)
        msg->type = spec->type;
cleanup:
    msgpack_unpacked_destroy(&u);
    if (err != RT_OK)
        rt_msg_clear(msg);
    return err;
}

/* Hands a packed buffer of at most max bytes over to the caller, or frees it on error. */
static int s_release(msgpack_sbuffer *sb, int err, size_t max, void **frame, size_t *len)
{
    if (err == RT_OK && sb->size > max)
        err = RT_EINVAL;
    if (err != RT_OK) {
        msgpack_sbuffer_destroy(sb);
        return err;
    }
    *len = sb->size;
    *frame = msgpack_sbuffer_release(sb);
    return RT_OK;
}

int rt_msg_encode(const rt_msg_t *msg, void **frame, size_t *len)
{
    const s_msg_spec_t *spec = s_spec_of_type(msg->type);
    msgpack_sbuffer sb;
    s_packer_t sp = {.err = RT_OK};

    *frame = NULL;
    *len = 0;
    if (!spec)
        return RT_EINVAL;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&sp.pk, &sb, msgpack_sbuffer_write);
    s_pack_header(&sp, spec->tag, s_msg_version(spec), strlen(spec->sig));
    for (size_t i = 0; spec->sig[i]; i++) {
        const char *field = (const char *)msg + spec->off[i];
        switch (spec->sig[i]) {
        case 's': s_pack_cstr(&sp, *(char *const *)field); break;
        case 't': s_pack_bintext(&sp, *(char *const *)field); break;
        case 'u': S_PACK(&sp, msgpack_pack_uint64(&sp.pk, *(const uint64_t *)field)); break;
        case 'i': S_PACK(&sp, msgpack_pack_int64(&sp.pk, *(const int64_t *)field)); break;
        case 'e': {
            int64_t v = *(const int64_t *)field;
            if (v < RT_SUB_STREAMING || v > RT_SUB_LAST_STATE) {
                if (sp.err == RT_OK)
                    sp.err = RT_EINVAL;
                break;
            }
            S_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)v));
            break;
        }
        case 'b':
            if (*(const bool *)field)
                S_PACK(&sp, msgpack_pack_true(&sp.pk));
            else
                S_PACK(&sp, msgpack_pack_false(&sp.pk));
            break;
        case 'x': S_PACK(&sp, msgpack_pack_bin_with_body(&sp.pk, msg->data, msg->datalen)); break;
        case 'T': s_pack_tables(&sp, msg); break;
        case 'P': s_progress_pack(&sp, (const rt_copy_progress_t *)field); break;
        case 'D': s_pack_ddl(&sp, msg, false); break;
        case 'E': s_pack_ddl(&sp, msg, true); break;
        }
    }
    return s_release(&sb, sp.err,
                     msg->type == RT_MSG_COPY_DATA ? RT_WIRE_MAX_RECORD : RT_WIRE_MAX_FRAME, frame,
                     len);
}

/* ---------------------------------------------------------------------------------
 * STATUS_REPLY. */

#define S_STATUS_VERSION 2
#define S_STATUS_FIELDS 20u    /* after the version */
#define S_STATUS_V1_FIELDS 16u /* version 1: without the four after subs */
#define S_STATUS_SUB_FIELDS 11u

/* Packs a fixed-size NUL-terminated name; RT_EINVAL if it fills its buffer. */
static void s_pack_fixed(s_packer_t *sp, const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    if (n == size) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    S_PACK(sp, msgpack_pack_str_with_body(&sp->pk, s, n));
}

/* Reads a str field into a fixed buffer of size bytes. */
static void s_str_fixed(s_cursor_t *c, char *dst, size_t size)
{
    const char *p;
    uint32_t n;
    s_str(c, &p, &n);
    if (!c->bad && n >= size)
        c->bad = true;
    if (c->bad)
        n = 0;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

int rt_status_encode(const rt_status_t *st, void **frame, size_t *len)
{
    msgpack_sbuffer sb;
    s_packer_t sp = {.err = RT_OK};

    *frame = NULL;
    *len = 0;
    const int64_t figures[] = {st->retained_wal_bytes, st->source_lag_bytes, st->source_lag_ms,
                               st->outbox_limit_bytes};
    if ((st->nsubs && !st->subs) || st->capture_state < RT_CAPTURE_STREAMING ||
        st->capture_state > RT_CAPTURE_NONE || st->security < RT_SECURITY_LOOPBACK ||
        st->security > RT_SECURITY_INSECURE)
        return RT_EINVAL;
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        if (figures[i] < -1)
            return RT_EINVAL;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&sp.pk, &sb, msgpack_sbuffer_write);
    s_pack_header(&sp, "STATUS_REPLY", S_STATUS_VERSION, S_STATUS_FIELDS);
    s_pack_fixed(&sp, st->source, sizeof st->source);
    s_pack_fixed(&sp, st->slot, sizeof st->slot);
    const uint64_t nums[] = {st->first_seq,     st->head_seq,     st->records,
                             st->outbox_bytes,  st->received_lsn, st->confirmed_lsn,
                             st->captured_txns, st->captured_rows};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        S_PACK(&sp, msgpack_pack_uint64(&sp.pk, nums[i]));
    S_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)st->capture_state));
    S_PACK(&sp, msgpack_pack_int64(&sp.pk, st->oldest_ts));
    S_PACK(&sp, msgpack_pack_int64(&sp.pk, st->head_ts));
    S_PACK(&sp, msgpack_pack_int64(&sp.pk, st->now_ts));
    S_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)st->security));
    S_PACK(&sp, msgpack_pack_array(&sp.pk, st->nsubs));
    for (uint32_t i = 0; i < st->nsubs && sp.err == RT_OK; i++) {
        const rt_status_sub_t *sub = &st->subs[i];
        if (sub->state < RT_SUB_STREAMING || sub->state > RT_SUB_LAST_STATE) {
            sp.err = RT_EINVAL;
            break;
        }
        S_PACK(&sp, msgpack_pack_array(&sp.pk, S_STATUS_SUB_FIELDS));
        s_pack_fixed(&sp, sub->name, sizeof sub->name);
        S_PACK(&sp, msgpack_pack_uint64(&sp.pk, sub->acked_seq));
        S_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)sub->state));
        S_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->seen_ms_ago));
        S_PACK(&sp, msgpack_pack_uint64(&sp.pk, sub->conflicts));
        S_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->commit_ts));
        S_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->applied_at));
        S_PACK(&sp, msgpack_pack_uint64(&sp.pk, sub->lag_bytes));
        S_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->lag_ms));
        s_pack_fixed(&sp, sub->error, sizeof sub->error);
        s_progress_pack(&sp, &sub->copy);
    }
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        S_PACK(&sp, msgpack_pack_int64(&sp.pk, figures[i]));
    return s_release(&sb, sp.err, RT_WIRE_MAX_FRAME, frame, len);
}

int rt_status_decode(const void *frame, size_t len, rt_status_t *st)
{
    msgpack_unpacked u;
    s_cursor_t c, subs;
    int err;

    memset(st, 0, sizeof *st);
    msgpack_unpacked_init(&u);
    if ((err = s_unpack(&u, frame, len)) != RT_OK)
        goto cleanup;
    /* Version 1 is told by its number of fields; its header must say 1. */
    s_open(&c, &u.data, UINT32_MAX);
    bool v1 = c.n == S_STATUS_V1_FIELDS + 2;
    if (!v1 && c.n != S_STATUS_FIELDS + 2)
        c.bad = true;
    s_header(&c, "STATUS_REPLY", v1 ? 1 : S_STATUS_VERSION);
    s_str_fixed(&c, st->source, sizeof st->source);
    s_str_fixed(&c, st->slot, sizeof st->slot);
    st->first_seq = s_uint(&c, UINT64_MAX);
    st->head_seq = s_uint(&c, UINT64_MAX);
    st->records = s_uint(&c, UINT64_MAX);
    st->outbox_bytes = s_uint(&c, UINT64_MAX);
    st->received_lsn = s_uint(&c, UINT64_MAX);
    st->confirmed_lsn = s_uint(&c, UINT64_MAX);
    st->captured_txns = s_uint(&c, UINT64_MAX);
    st->captured_rows = s_uint(&c, UINT64_MAX);
    st->capture_state = (int64_t)s_uint(&c, RT_CAPTURE_NONE);
    st->oldest_ts = s_int(&c, INT64_MIN, INT64_MAX);
    st->head_ts = s_int(&c, INT64_MIN, INT64_MAX);
    st->now_ts = s_int(&c, INT64_MIN, INT64_MAX);
    st->security = (int64_t)s_uint(&c, RT_SECURITY_INSECURE);
    s_sub(&c, &subs, UINT32_MAX);
    int64_t *figures[] = {&st->retained_wal_bytes, &st->source_lag_bytes, &st->source_lag_ms,
                          &st->outbox_limit_bytes};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        *figures[i] = v1 ? -1 : s_int(&c, -1, INT64_MAX);
    if (c.bad || c.i != c.n) {
        err = RT_EPROTO;
        goto cleanup;
    }
    if (subs.n) {
        st->subs = calloc(subs.n, sizeof *st->subs);
        if (!st->subs) {
            err = RT_ENOMEM;
            goto cleanup;
        }
    }
    for (uint32_t i = 0; i < subs.n && !subs.bad; i++) {
        rt_status_sub_t *sub = &st->subs[i];
        s_cursor_t sc;
        s_sub(&subs, &sc, S_STATUS_SUB_FIELDS);
        s_str_fixed(&sc, sub->name, sizeof sub->name);
        sub->acked_seq = s_uint(&sc, UINT64_MAX);
        sub->state = (int64_t)s_uint(&sc, RT_SUB_LAST_STATE);
        sub->seen_ms_ago = s_int(&sc, INT64_MIN, INT64_MAX);
        sub->conflicts = s_uint(&sc, UINT64_MAX);
        sub->commit_ts = s_int(&sc, INT64_MIN, INT64_MAX);
        sub->applied_at = s_int(&sc, INT64_MIN, INT64_MAX);
        sub->lag_bytes = s_uint(&sc, UINT64_MAX);
        sub->lag_ms = s_int(&sc, INT64_MIN, INT64_MAX);
        s_str_fixed(&sc, sub->error, sizeof sub->error);
        s_progress_decode(&sc, &sub->copy);
        if (sc.bad)
            subs.bad = true;
    }
    st->nsubs = subs.n;
    err = subs.bad ? RT_EPROTO : RT_OK;
cleanup:
    msgpack_unpacked_destroy(&u);
    if (err != RT_OK)
        rt_status_clear(st);
    return err;
}

void rt_status_clear(rt_status_t *st)
{
    if (!st)
        return;
    free(st->subs);
    memset(st, 0, sizeof *st);
}
