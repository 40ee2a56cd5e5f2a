/* publisher/pgoutput.c - pure decoder of pgoutput protocol version 1 and 2 messages (no I/O). */
/*
 * Every message starts with one type byte. Integers are big-endian, strings are
 * NUL-terminated, LSNs and timestamps are int64 (timestamps in microseconds since
 * 2000-01-01). Protocol 1 carries no xid prefix in change messages.
 *
 *   B  int64 final_lsn | int64 commit_ts | int32 xid
 *   C  int8 flags(=0) | int64 commit_lsn | int64 end_lsn | int64 commit_ts
 *   O  int64 origin_lsn | string name
 *   R  int32 relid | string nspname | string relname | int8 replident ('d','n','f','i')
 *      | int16 natts | natts x { int8 flags(1 = key) | string name | int32 typoid | int32 typmod }
 *   Y  int32 typoid | string nspname | string typname
 *   I  int32 relid | 'N' TupleData
 *   U  int32 relid | [ 'K' TupleData | 'O' TupleData ] | 'N' TupleData
 *   D  int32 relid | ( 'K' | 'O' ) TupleData
 *   T  int32 nrels | int8 flags (1 = CASCADE, 2 = RESTART IDENTITY) | nrels x int32 relid
 *   M  int8 flags (1 = transactional) | int64 lsn | string prefix | int32 len | len bytes
 *
 *   TupleData = int16 ncols | ncols x ( 'n' | 'u' | 't' int32 len bytes | 'b' int32 len bytes )
 *
 * Protocol 2 with streaming on adds the blocks of in-progress transactions:
 *
 *   S  int32 xid | int8 first_segment (0 or 1)      a block begins
 *   E  (no body)                                     the block ends
 *   c  int32 xid | int8 flags(=0) | int64 commit_lsn | int64 end_lsn | int64 commit_ts
 *   A  int32 xid | int32 subxid                      abort (subxid == xid: all of it)
 *
 * Inside a block (between S and E), R, Y, I, U, D, T and M carry int32 xid (the
 * subtransaction's own) right after the type byte; O may follow S. c and A come
 * outside blocks. Two-phase (b, P, K, r) messages need protocol 3 and are rejected
 * as malformed.
 */
#include "pgoutput.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_PRINT_MAX 40 /* value bytes printed before "...(N bytes)" */

struct rt_pgoutput_t {
    rt_pgo_col_t *oldcols; /* scratch columns of the old tuple */
    size_t oldcap;         /* capacity of oldcols, in columns */
    rt_pgo_col_t *newcols; /* scratch columns of the new tuple */
    size_t newcap;         /* capacity of newcols, in columns */
    rt_pgo_attr_t *attrs;  /* scratch attributes of a Relation message */
    size_t attrcap;        /* capacity of attrs */
    uint32_t *relids;      /* scratch relation ids of a Truncate message */
    size_t relidcap;       /* capacity of relids */
    bool in_stream;        /* between S and E: changes carry an xid */
};

/* A read cursor over one message; once err is set every read returns 0 and stays failed. */
typedef struct {
    const unsigned char *p;   /* next byte to read */
    const unsigned char *end; /* one past the last byte */
    bool err;                 /* sticky: a read ran past the end or a string had no NUL */
} s_cursor_t;

static bool s_need(s_cursor_t *c, size_t n)
{
    if (c->err || (size_t)(c->end - c->p) < n) {
        c->err = true;
        return false;
    }
    return true;
}

static size_t s_left(const s_cursor_t *c)
{
    return c->err ? 0 : (size_t)(c->end - c->p);
}

static uint8_t s_u8(s_cursor_t *c)
{
    if (!s_need(c, 1))
        return 0;
    return *c->p++;
}

static uint16_t s_u16(s_cursor_t *c)
{
    if (!s_need(c, 2))
        return 0;
    uint16_t v = (uint16_t)((c->p[0] << 8) | c->p[1]);
    c->p += 2;
    return v;
}

static uint32_t s_u32(s_cursor_t *c)
{
    if (!s_need(c, 4))
        return 0;
    uint32_t v = ((uint32_t)c->p[0] << 24) | ((uint32_t)c->p[1] << 16) | ((uint32_t)c->p[2] << 8) |
                 (uint32_t)c->p[3];
    c->p += 4;
    return v;
}

static uint64_t s_u64(s_cursor_t *c)
{
    if (!s_need(c, 8))
        return 0;
    uint64_t v = rt_get_be64(c->p);
    c->p += 8;
    return v;
}

/* Returns the NUL-terminated string at the cursor (pointing into the message), or NULL. */
static const char *s_str(s_cursor_t *c)
{
    if (c->err)
        return NULL;
    const unsigned char *nul = memchr(c->p, '\0', (size_t)(c->end - c->p));
    if (!nul) {
        c->err = true;
        return NULL;
    }
    const char *s = (const char *)c->p;
    c->p = nul + 1;
    return s;
}

/* Returns n bytes at the cursor (pointing into the message), or NULL. */
static const char *s_bytes(s_cursor_t *c, size_t n)
{
    if (!s_need(c, n))
        return NULL;
    const char *b = (const char *)c->p;
    c->p += n;
    return b;
}

static int s_read_tuple(s_cursor_t *c, rt_pgo_col_t **cols, size_t *cap, rt_pgo_tuple_t *tup)
{
    int16_t ncols = (int16_t)s_u16(c);
    /* Each column takes at least its kind byte. */
    if (c->err || ncols < 0 || (size_t)ncols > s_left(c))
        return RT_EPROTO;
    int rc = rt_reserve((void **)cols, cap, (size_t)ncols, sizeof(rt_pgo_col_t));
    if (rc)
        return rc;
    for (int i = 0; i < ncols; i++) {
        rt_pgo_col_t *col = &(*cols)[i];
        col->kind = (char)s_u8(c);
        col->len = 0;
        col->data = NULL;
        switch (col->kind) {
        case 'n':
        case 'u': break;
        case 't':
        case 'b': {
            int32_t len = (int32_t)s_u32(c);
            if (c->err || len < 0)
                return RT_EPROTO;
            col->len = (uint32_t)len;
            col->data = s_bytes(c, (size_t)len);
            break;
        }
        default: return RT_EPROTO;
        }
        if (c->err)
            return RT_EPROTO;
    }
    tup->ncols = (uint16_t)ncols;
    tup->cols = *cols;
    return RT_OK;
}

static int s_decode_begin(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.begin.final_lsn = s_u64(c);
    msg->u.begin.commit_ts = (int64_t)s_u64(c);
    msg->u.begin.xid = s_u32(c);
    return RT_OK;
}

static int s_decode_commit(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.commit.flags = s_u8(c);
    msg->u.commit.commit_lsn = s_u64(c);
    msg->u.commit.end_lsn = s_u64(c);
    msg->u.commit.commit_ts = (int64_t)s_u64(c);
    /* No commit flags are defined in protocol 1. */
    return msg->u.commit.flags == 0 ? RT_OK : RT_EPROTO;
}

static int s_decode_origin(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.origin.lsn = s_u64(c);
    msg->u.origin.name = s_str(c);
    return RT_OK;
}

static int s_decode_relation(rt_pgoutput_t *self, s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.relation.relid = s_u32(c);
    msg->u.relation.nspname = s_str(c);
    msg->u.relation.relname = s_str(c);
    char replident = (char)s_u8(c);
    if (replident != 'd' && replident != 'n' && replident != 'f' && replident != 'i')
        return RT_EPROTO;
    msg->u.relation.replident = replident;
    int16_t natts = (int16_t)s_u16(c);
    /* Each attribute takes at least 10 bytes: flags, an empty name, typoid, typmod. */
    if (c->err || natts < 0 || (size_t)natts > s_left(c) / 10)
        return RT_EPROTO;
    int rc =
        rt_reserve((void **)&self->attrs, &self->attrcap, (size_t)natts, sizeof(rt_pgo_attr_t));
    if (rc)
        return rc;
    for (int i = 0; i < natts; i++) {
        rt_pgo_attr_t *att = &self->attrs[i];
        att->flags = s_u8(c);
        att->name = s_str(c);
        att->typoid = s_u32(c);
        att->typmod = (int32_t)s_u32(c);
        if (c->err || (att->flags & ~1u))
            return RT_EPROTO;
    }
    msg->u.relation.natts = (uint16_t)natts;
    msg->u.relation.attrs = self->attrs;
    return RT_OK;
}

static int s_decode_type(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.type.typoid = s_u32(c);
    msg->u.type.nspname = s_str(c);
    msg->u.type.typname = s_str(c);
    return RT_OK;
}

static int s_decode_insert(rt_pgoutput_t *self, s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.insert.relid = s_u32(c);
    if (s_u8(c) != 'N')
        return RT_EPROTO;
    return s_read_tuple(c, &self->newcols, &self->newcap, &msg->u.insert.newtup);
}

static int s_decode_update(rt_pgoutput_t *self, s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.update.relid = s_u32(c);
    char tag = (char)s_u8(c);
    if (tag == 'K' || tag == 'O') {
        msg->u.update.old_kind = tag;
        int rc = s_read_tuple(c, &self->oldcols, &self->oldcap, &msg->u.update.oldtup);
        if (rc)
            return rc;
        tag = (char)s_u8(c);
    }
    if (tag != 'N')
        return RT_EPROTO;
    return s_read_tuple(c, &self->newcols, &self->newcap, &msg->u.update.newtup);
}

static int s_decode_delete(rt_pgoutput_t *self, s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.del.relid = s_u32(c);
    char tag = (char)s_u8(c);
    if (tag != 'K' && tag != 'O')
        return RT_EPROTO;
    msg->u.del.old_kind = tag;
    return s_read_tuple(c, &self->oldcols, &self->oldcap, &msg->u.del.oldtup);
}

static int s_decode_truncate(rt_pgoutput_t *self, s_cursor_t *c, rt_pgo_msg_t *msg)
{
    int32_t nrels = (int32_t)s_u32(c);
    uint8_t flags = s_u8(c);
    if (c->err || nrels < 0 || (size_t)nrels > s_left(c) / 4 || (flags & ~3u))
        return RT_EPROTO;
    int rc = rt_reserve((void **)&self->relids, &self->relidcap, (size_t)nrels, sizeof(uint32_t));
    if (rc)
        return rc;
    for (int32_t i = 0; i < nrels; i++)
        self->relids[i] = s_u32(c);
    msg->u.truncate.flags = flags;
    msg->u.truncate.nrels = (uint32_t)nrels;
    msg->u.truncate.relids = self->relids;
    return RT_OK;
}

static int s_decode_message(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.message.flags = s_u8(c);
    msg->u.message.lsn = s_u64(c);
    msg->u.message.prefix = s_str(c);
    int32_t len = (int32_t)s_u32(c);
    if (c->err || len < 0 || (msg->u.message.flags & ~1u))
        return RT_EPROTO;
    msg->u.message.len = (uint32_t)len;
    msg->u.message.content = s_bytes(c, (size_t)len);
    return RT_OK;
}

static int s_decode_stream_start(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.stream_start.xid = s_u32(c);
    uint8_t first = s_u8(c);
    msg->u.stream_start.first = first == 1;
    return first <= 1 ? RT_OK : RT_EPROTO;
}

static int s_decode_stream_commit(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.stream_commit.xid = s_u32(c);
    msg->u.stream_commit.flags = s_u8(c);
    msg->u.stream_commit.commit_lsn = s_u64(c);
    msg->u.stream_commit.end_lsn = s_u64(c);
    msg->u.stream_commit.commit_ts = (int64_t)s_u64(c);
    return msg->u.stream_commit.flags == 0 ? RT_OK : RT_EPROTO;
}

static int s_decode_stream_abort(s_cursor_t *c, rt_pgo_msg_t *msg)
{
    msg->u.stream_abort.xid = s_u32(c);
    msg->u.stream_abort.subxid = s_u32(c);
    return RT_OK;
}

rt_pgoutput_t *rt_pgoutput_new(void)
{
    return calloc(1, sizeof(rt_pgoutput_t));
}

void rt_pgoutput_destroy(rt_pgoutput_t **self_p)
{
    assert(self_p);
    rt_pgoutput_t *self = *self_p;
    if (!self)
        return;
    free(self->oldcols);
    free(self->newcols);
    free(self->attrs);
    free(self->relids);
    free(self);
    *self_p = NULL;
}

int rt_pgoutput_decode(rt_pgoutput_t *self, const char *buf, size_t len, rt_pgo_msg_t *msg)
{
    assert(self);
    assert(msg);
    assert(buf || len == 0);
    memset(msg, 0, sizeof(*msg));
    if (len == 0)
        return RT_EPROTO;

    s_cursor_t c = {(const unsigned char *)buf, (const unsigned char *)buf + len, false};
    char type = (char)s_u8(&c);
    if (self->in_stream && strchr("RYIUDTM", type) && type != '\0')
        msg->xid = s_u32(&c);
    if (self->in_stream ? strchr("BCScA", type) != NULL && type != '\0' : type == 'E')
        return RT_EPROTO;
    int rc;
    switch (type) {
    case 'B': rc = s_decode_begin(&c, msg); break;
    case 'C': rc = s_decode_commit(&c, msg); break;
    case 'S': rc = s_decode_stream_start(&c, msg); break;
    case 'E': rc = RT_OK; break;
    case 'c': rc = s_decode_stream_commit(&c, msg); break;
    case 'A': rc = s_decode_stream_abort(&c, msg); break;
    case 'O': rc = s_decode_origin(&c, msg); break;
    case 'R': rc = s_decode_relation(self, &c, msg); break;
    case 'Y': rc = s_decode_type(&c, msg); break;
    case 'I': rc = s_decode_insert(self, &c, msg); break;
    case 'U': rc = s_decode_update(self, &c, msg); break;
    case 'D': rc = s_decode_delete(self, &c, msg); break;
    case 'T': rc = s_decode_truncate(self, &c, msg); break;
    case 'M': rc = s_decode_message(&c, msg); break;
    default: rc = RT_EPROTO; break; /* includes b, P, K, r (v3) */
    }
    if (rc == RT_OK && (c.err || c.p != c.end))
        rc = RT_EPROTO;
    if (rc) {
        memset(msg, 0, sizeof(*msg));
        return rc;
    }
    msg->type = type;
    if (type == 'S' || type == 'E')
        self->in_stream = type == 'S';
    return RT_OK;
}

bool rt_pgoutput_in_stream(const rt_pgoutput_t *self)
{
    return self->in_stream;
}

/* Writes len bytes, escaping non-printable bytes and backslash (and '"' when quoted) as
 * \xNN; at most S_PRINT_MAX bytes when truncate is set, followed by "...(N bytes)". */
static void s_print_bytes(FILE *out, const char *data, size_t len, bool quoted, bool truncate)
{
    size_t n = truncate && len > S_PRINT_MAX ? S_PRINT_MAX : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)data[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '\\' || (quoted && ch == '"'))
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    if (n < len)
        fprintf(out, "...(%zu bytes)", len);
}

static void s_print_str(FILE *out, const char *s)
{
    fputc('"', out);
    if (s)
        s_print_bytes(out, s, strlen(s), true, false);
    fputc('"', out);
}

static void s_print_lsn(FILE *out, const char *label, rt_lsn_t lsn)
{
    char buf[24];
    fprintf(out, " %s=%s", label, rt_lsn_format(lsn, buf, sizeof(buf)));
}

static void s_print_tuple(FILE *out, const char *label, const rt_pgo_tuple_t *tup)
{
    fprintf(out, " %s=[", label);
    for (uint16_t i = 0; i < tup->ncols; i++) {
        const rt_pgo_col_t *col = &tup->cols[i];
        if (i)
            fputc(' ', out);
        switch (col->kind) {
        case 't':
            fputs("t:", out);
            s_print_bytes(out, col->data, col->len, false, true);
            break;
        case 'b': fprintf(out, "b:%" PRIu32, col->len); break;
        case 'n':
        case 'u': fputc(col->kind, out); break;
        default: fprintf(out, "?%02x", (unsigned char)col->kind); break;
        }
    }
    fputc(']', out);
}

void rt_pgo_msg_print(const rt_pgo_msg_t *msg, FILE *out)
{
    assert(msg);
    assert(out);
    switch (msg->type) {
    case 'B':
        fputc('B', out);
        s_print_lsn(out, "final_lsn", msg->u.begin.final_lsn);
        fprintf(out, " commit_ts=%" PRId64 " xid=%" PRIu32, msg->u.begin.commit_ts,
                msg->u.begin.xid);
        break;
    case 'C':
        fprintf(out, "C flags=%u", msg->u.commit.flags);
        s_print_lsn(out, "commit_lsn", msg->u.commit.commit_lsn);
        s_print_lsn(out, "end_lsn", msg->u.commit.end_lsn);
        fprintf(out, " commit_ts=%" PRId64, msg->u.commit.commit_ts);
        break;
    case 'O':
        fputc('O', out);
        s_print_lsn(out, "lsn", msg->u.origin.lsn);
        fputs(" name=", out);
        s_print_str(out, msg->u.origin.name);
        break;
    case 'R':
        fprintf(out, "R relid=%" PRIu32 " nsp=", msg->u.relation.relid);
        s_print_str(out, msg->u.relation.nspname);
        fputs(" rel=", out);
        s_print_str(out, msg->u.relation.relname);
        fprintf(out, " replident=%c natts=%u attrs=[", msg->u.relation.replident,
                msg->u.relation.natts);
        for (uint16_t i = 0; i < msg->u.relation.natts; i++) {
            const rt_pgo_attr_t *att = &msg->u.relation.attrs[i];
            fprintf(out, "%s%u:", i ? " " : "", att->flags);
            s_print_str(out, att->name);
            fprintf(out, ":%" PRIu32 ":%" PRId32, att->typoid, att->typmod);
        }
        fputc(']', out);
        break;
    case 'Y':
        fprintf(out, "Y typoid=%" PRIu32 " nsp=", msg->u.type.typoid);
        s_print_str(out, msg->u.type.nspname);
        fputs(" typ=", out);
        s_print_str(out, msg->u.type.typname);
        break;
    case 'I':
        fprintf(out, "I relid=%" PRIu32, msg->u.insert.relid);
        s_print_tuple(out, "new", &msg->u.insert.newtup);
        break;
    case 'U':
        fprintf(out, "U relid=%" PRIu32, msg->u.update.relid);
        if (msg->u.update.old_kind) {
            fprintf(out, " old_kind=%c", msg->u.update.old_kind);
            s_print_tuple(out, "old", &msg->u.update.oldtup);
        }
        s_print_tuple(out, "new", &msg->u.update.newtup);
        break;
    case 'D':
        fprintf(out, "D relid=%" PRIu32 " old_kind=%c", msg->u.del.relid, msg->u.del.old_kind);
        s_print_tuple(out, "old", &msg->u.del.oldtup);
        break;
    case 'T':
        fprintf(out, "T flags=%u nrels=%" PRIu32 " relids=[", msg->u.truncate.flags,
                msg->u.truncate.nrels);
        for (uint32_t i = 0; i < msg->u.truncate.nrels; i++)
            fprintf(out, "%s%" PRIu32, i ? " " : "", msg->u.truncate.relids[i]);
        fputc(']', out);
        break;
    case 'M':
        fprintf(out, "M flags=%u", msg->u.message.flags);
        s_print_lsn(out, "lsn", msg->u.message.lsn);
        fputs(" prefix=", out);
        s_print_str(out, msg->u.message.prefix);
        fprintf(out, " len=%" PRIu32 " content=", msg->u.message.len);
        s_print_bytes(out, msg->u.message.content, msg->u.message.len, false, true);
        break;
    case 'S':
        fprintf(out, "S xid=%" PRIu32 " first=%d", msg->u.stream_start.xid,
                msg->u.stream_start.first);
        break;
    case 'E': fputc('E', out); break;
    case 'c':
        fprintf(out, "c xid=%" PRIu32 " flags=%u", msg->u.stream_commit.xid,
                msg->u.stream_commit.flags);
        s_print_lsn(out, "commit_lsn", msg->u.stream_commit.commit_lsn);
        s_print_lsn(out, "end_lsn", msg->u.stream_commit.end_lsn);
        fprintf(out, " commit_ts=%" PRId64, msg->u.stream_commit.commit_ts);
        break;
    case 'A':
        fprintf(out, "A xid=%" PRIu32 " subxid=%" PRIu32, msg->u.stream_abort.xid,
                msg->u.stream_abort.subxid);
        break;
    default: fprintf(out, "? type=0x%02x", (unsigned char)msg->type); break;
    }
    if (msg->xid)
        fprintf(out, " in_xid=%" PRIu32, msg->xid);
}
