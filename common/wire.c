/* common/wire.c - MessagePack codec for outbox records and the control messages: what
 * its parts share (wire_int.h). Records are in wire_record.c, control messages in
 * wire_msg.c, STATUS_REPLY in wire_status.c.
 *
 * Every frame is one msgpack array [type:str, version:uint, fields...] (schemas/wire.md).
 *
 * Decoding is pure: no logging, malformed input gives RT_EPROTO. Every frame is first
 * walked by rt_wire_prevalidate() (declared lengths, nesting, trailing bytes), since
 * msgpack-c trusts declared sizes; then msgpack_unpack_next() must consume it whole.
 */
#include "wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

/* Deepest container nesting rt_wire_prevalidate() accepts. */
#define S_MAX_DEPTH 16

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
int rt__wire_unpack(msgpack_unpacked *u, const void *frame, size_t len)
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

static const msgpack_object s_nil = {.type = MSGPACK_OBJECT_NIL};

/* Opens o as an array of exactly want elements (any size if want is UINT32_MAX). */
void rt__wire_open(rt__wire_cursor_t *c, const msgpack_object *o, uint32_t want)
{
    c->items = NULL;
    c->n = c->i = 0;
    c->bad = o->type != MSGPACK_OBJECT_ARRAY || (want != UINT32_MAX && o->via.array.size != want);
    if (!c->bad) {
        c->items = o->via.array.ptr;
        c->n = o->via.array.size;
    }
}

const msgpack_object *rt__wire_next(rt__wire_cursor_t *c)
{
    if (c->bad || c->i >= c->n) {
        c->bad = true;
        return &s_nil;
    }
    return &c->items[c->i++];
}

/* Opens the next element as a sub-cursor; a failure marks both. */
void rt__wire_sub(rt__wire_cursor_t *c, rt__wire_cursor_t *sub, uint32_t want)
{
    rt__wire_open(sub, rt__wire_next(c), want);
    if (c->bad)
        sub->bad = true;
    if (sub->bad)
        c->bad = true;
}

uint64_t rt__wire_uint(rt__wire_cursor_t *c, uint64_t max)
{
    const msgpack_object *o = rt__wire_next(c);
    if (c->bad)
        return 0;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        c->bad = true;
        return 0;
    }
    return o->via.u64;
}

int64_t rt__wire_int(rt__wire_cursor_t *c, int64_t min, int64_t max)
{
    const msgpack_object *o = rt__wire_next(c);
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

bool rt__wire_bool(rt__wire_cursor_t *c)
{
    const msgpack_object *o = rt__wire_next(c);
    if (c->bad)
        return false;
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        c->bad = true;
        return false;
    }
    return o->via.boolean;
}

/* Checks that o is a str of at most RT__WIRE_MAX_STR bytes without NUL. */
static bool s_is_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size <= RT__WIRE_MAX_STR &&
           (o->via.str.size == 0 || !memchr(o->via.str.ptr, '\0', o->via.str.size));
}

/* Reads a str field; *ptr and *len point into the frame (not NUL-terminated). */
void rt__wire_str(rt__wire_cursor_t *c, const char **ptr, uint32_t *len)
{
    const msgpack_object *o = rt__wire_next(c);
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
void rt__wire_header(rt__wire_cursor_t *c, const char *tag, uint64_t version)
{
    const char *p;
    uint32_t n;
    rt__wire_str(c, &p, &n);
    if (!c->bad && (n != strlen(tag) || memcmp(p, tag, n) != 0))
        c->bad = true;
    if (rt__wire_uint(c, UINT64_MAX) != version)
        c->bad = true;
}

/* A text value: a bin with a terminating NUL and none inside. */
bool rt__wire_is_text(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size >= 1 &&
           o->via.bin.ptr[o->via.bin.size - 1] == '\0' &&
           !memchr(o->via.bin.ptr, '\0', o->via.bin.size - 1);
}

/* ---------------------------------------------------------------------------------
 * Packing helpers: every pack call goes through a packer with a sticky error. */

/* Packs a C string of at most RT__WIRE_MAX_STR bytes (NULL packs as ""). */
void rt__wire_pack_cstr(rt__wire_packer_t *sp, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > RT__WIRE_MAX_STR) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    RT__WIRE_PACK(sp, msgpack_pack_str_with_body(&sp->pk, s ? s : "", n));
}

void rt__wire_pack_header(rt__wire_packer_t *sp, const char *tag, uint8_t version, size_t nfields)
{
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, nfields + 2));
    rt__wire_pack_cstr(sp, tag);
    RT__WIRE_PACK(sp, msgpack_pack_uint8(&sp->pk, version));
}

/* Hands a packed buffer of at most max bytes over to the caller, or frees it on error. */
int rt__wire_release(msgpack_sbuffer *sb, int err, size_t max, void **frame, size_t *len)
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
