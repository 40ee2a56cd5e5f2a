/* common/wire_msg.c - the control messages (HELLO, WELCOME, FETCH, FETCHED, ACK, HUGZ,
 * LIVE, the admin and initial copy messages), each a row of s_msg_specs. */
#include "wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

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

#define S_MAX_FIELDS 8

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
    /* Version 2: the commit LSN of the applied seq's record (flags RT_HELLO_LSN). The
     * first entry of a type is the one encoded; a later one with the same tag is an older
     * version, still decoded. */
    {.type = RT_MSG_HELLO,
     .tag = "HELLO",
     .sig = "suuu",
     .off = {S_OFF(name), S_OFF(seq), S_OFF(lsn), S_OFF(flags)},
     .version = 2},
    {.type = RT_MSG_HELLO, .tag = "HELLO", .sig = "su", .off = {S_OFF(name), S_OFF(seq)}},
    /* Version 2: the publisher's run; 3: the applied seq it registered. */
    {.type = RT_MSG_WELCOME,
     .tag = "WELCOME",
     .sig = "ssuubuu",
     .off = {S_OFF(source), S_OFF(endpoint), S_OFF(first_seq), S_OFF(head_seq), S_OFF(paused),
             S_OFF(run_id), S_OFF(seq)},
     .version = 3},
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
    /* Version 2: the run the subscriber follows (0: any). */
    {.type = RT_MSG_FETCH,
     .tag = "FETCH",
     .sig = "uuu",
     .off = {S_OFF(seq), S_OFF(count), S_OFF(run_id)},
     .version = 2},
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
    {.type = RT_MSG_STREAM,
     .tag = "STREAM",
     .sig = "uuuuux",
     .off = {S_OFF(run_id), S_OFF(head_seq), S_OFF(xid), S_OFF(subxid), S_OFF(seq), S_OFF(data)}},
    {.type = RT_MSG_STREAM_ABORT,
     .tag = "STREAM_ABORT",
     .sig = "uuu",
     .off = {S_OFF(run_id), S_OFF(xid), S_OFF(subxid)}},
    {.type = RT_MSG_STREAM_COMMIT,
     .tag = "STREAM_COMMIT",
     .sig = "uuuu",
     .off = {S_OFF(run_id), S_OFF(xid), S_OFF(count), S_OFF(first_seq)}},
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
static char *s_str_dup(rt__wire_cursor_t *c, bool *enomem)
{
    const char *p;
    uint32_t n;
    rt__wire_str(c, &p, &n);
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
static int s_decode_tables(rt__wire_cursor_t *c, rt_msg_t *msg)
{
    rt__wire_cursor_t tc;
    bool enomem = false;
    rt__wire_sub(c, &tc, UINT32_MAX);
    if (c->bad || tc.n > RT_SYNC_MAX_TABLES) {
        c->bad = true;
        return RT_OK;
    }
    if (tc.n && !(msg->tables = calloc(tc.n, sizeof *msg->tables)))
        return RT_ENOMEM;
    msg->ntables = tc.n;
    for (uint32_t i = 0; i < tc.n && !c->bad && !enomem; i++) {
        rt_sync_table_t *t = &msg->tables[i];
        rt__wire_cursor_t one, cols;
        rt__wire_sub(&tc, &one, 7);
        t->schema = s_str_dup(&one, &enomem);
        t->table = s_str_dup(&one, &enomem);
        const char *kind;
        uint32_t klen;
        rt__wire_str(&one, &kind, &klen);
        if (!one.bad && (klen != 1 || (kind[0] != 'r' && kind[0] != 'p')))
            one.bad = true;
        t->relkind = one.bad ? 0 : kind[0];
        t->bytes = rt__wire_uint(&one, UINT64_MAX);
        t->first_page = rt__wire_uint(&one, UINT32_MAX);
        t->end_page = rt__wire_uint(&one, UINT32_MAX);
        if (!one.bad && t->end_page && (t->end_page <= t->first_page || t->relkind != 'r'))
            one.bad = true;
        if (!one.bad && t->first_page && t->relkind != 'r')
            one.bad = true;
        rt__wire_sub(&one, &cols, UINT32_MAX);
        if (!one.bad && (cols.n == 0 || cols.n > RT_SYNC_MAX_COLUMNS))
            one.bad = true;
        if (!one.bad && !enomem && !(t->cols = calloc(cols.n, sizeof *t->cols)))
            enomem = true;
        if (!one.bad && !enomem)
            t->ncols = cols.n;
        for (uint32_t j = 0; j < t->ncols && !one.bad && !enomem; j++) {
            rt__wire_cursor_t col;
            rt__wire_sub(&cols, &col, 3);
            t->cols[j].name = s_str_dup(&col, &enomem);
            t->cols[j].type = s_str_dup(&col, &enomem);
            t->cols[j].typoid = (uint32_t)rt__wire_uint(&col, UINT32_MAX);
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
static char *s_text_dup(rt__wire_cursor_t *c, bool *enomem)
{
    const msgpack_object *o = rt__wire_next(c);
    if (c->bad)
        return NULL;
    if (!rt__wire_is_text(o)) {
        c->bad = true;
        return NULL;
    }
    char *d = s_dup(o->via.bin.ptr, o->via.bin.size - 1);
    if (!d)
        *enomem = true;
    return d;
}

/* text: pre and post are text fields (SCHEMA_READY), else str (SCHEMA). */
static int s_decode_ddl(rt__wire_cursor_t *c, rt_msg_t *msg, bool text)
{
    rt__wire_cursor_t dc;
    bool enomem = false;
    rt__wire_sub(c, &dc, UINT32_MAX);
    if (c->bad || dc.n > RT_SYNC_MAX_TABLES) {
        c->bad = true;
        return RT_OK;
    }
    if (dc.n && !(msg->ddl = calloc(dc.n, sizeof *msg->ddl)))
        return RT_ENOMEM;
    msg->nddl = dc.n;
    for (uint32_t i = 0; i < dc.n && !c->bad && !enomem; i++) {
        rt_sync_ddl_t *d = &msg->ddl[i];
        rt__wire_cursor_t one;
        rt__wire_sub(&dc, &one, 4);
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
static void s_pack_bintext(rt__wire_packer_t *sp, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    RT__WIRE_PACK(sp, msgpack_pack_bin(&sp->pk, n + 1));
    if (n)
        RT__WIRE_PACK(sp, msgpack_pack_bin_body(&sp->pk, s, n));
    RT__WIRE_PACK(sp, msgpack_pack_bin_body(&sp->pk, "", 1));
}

static void s_pack_ddl(rt__wire_packer_t *sp, const rt_msg_t *msg, bool text)
{
    if (msg->nddl > RT_SYNC_MAX_TABLES) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, msg->nddl));
    for (size_t i = 0; i < msg->nddl; i++) {
        const rt_sync_ddl_t *d = &msg->ddl[i];
        if (!d->schema || !d->schema[0] || !d->table || !d->table[0]) {
            if (sp->err == RT_OK)
                sp->err = RT_EINVAL;
            return;
        }
        RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 4));
        rt__wire_pack_cstr(sp, d->schema);
        rt__wire_pack_cstr(sp, d->table);
        if (text) {
            s_pack_bintext(sp, d->pre);
            s_pack_bintext(sp, d->post);
        } else {
            rt__wire_pack_cstr(sp, d->pre ? d->pre : "");
            rt__wire_pack_cstr(sp, d->post ? d->post : "");
        }
    }
}

static void s_pack_tables(rt__wire_packer_t *sp, const rt_msg_t *msg)
{
    if (msg->ntables > RT_SYNC_MAX_TABLES) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, msg->ntables));
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
        RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 7));
        rt__wire_pack_cstr(sp, t->schema);
        rt__wire_pack_cstr(sp, t->table);
        RT__WIRE_PACK(sp, msgpack_pack_str_with_body(&sp->pk, &t->relkind, 1));
        RT__WIRE_PACK(sp, msgpack_pack_uint64(&sp->pk, t->bytes));
        RT__WIRE_PACK(sp, msgpack_pack_uint64(&sp->pk, t->first_page));
        RT__WIRE_PACK(sp, msgpack_pack_uint64(&sp->pk, t->end_page));
        RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, t->ncols));
        for (uint32_t j = 0; j < t->ncols; j++) {
            RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 3));
            rt__wire_pack_cstr(sp, t->cols[j].name);
            rt__wire_pack_cstr(sp, t->cols[j].type);
            RT__WIRE_PACK(sp, msgpack_pack_uint32(&sp->pk, t->cols[j].typoid));
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
    rt__wire_cursor_t c;
    int err;

    memset(msg, 0, sizeof *msg);
    int type = rt_msg_peek_type(frame, len);
    if (!s_spec_of_type(type))
        return RT_EPROTO;
    msgpack_unpacked_init(&u);
    if ((err = rt__wire_unpack(&u, frame, len)) != RT_OK)
        goto cleanup;
    /* The version picks the layout (a peer may run an older rt). */
    err = RT_EPROTO;
    if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size < 2 ||
        u.data.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        !(spec = s_spec_of_version(type, u.data.via.array.ptr[1].via.u64)))
        goto cleanup;
    err = RT_OK;
    msg->version = s_msg_version(spec);
    rt__wire_open(&c, &u.data, (uint32_t)strlen(spec->sig) + 2);
    rt__wire_header(&c, spec->tag, s_msg_version(spec));
    for (size_t i = 0; spec->sig[i] && !c.bad; i++) {
        char *field = (char *)msg + spec->off[i];
        const char *p;
        uint32_t n;
        switch (spec->sig[i]) {
        case 's':
            rt__wire_str(&c, &p, &n);
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
        case 'u': *(uint64_t *)field = rt__wire_uint(&c, UINT64_MAX); break;
        case 'i': *(int64_t *)field = rt__wire_int(&c, INT64_MIN, INT64_MAX); break;
        case 'e': *(int64_t *)field = (int64_t)rt__wire_uint(&c, RT_SUB_LAST_STATE); break;
        case 'b': *(bool *)field = rt__wire_bool(&c); break;
        case 'x': {
            const msgpack_object *o = rt__wire_next(&c);
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
        case 'P': rt__wire_progress_decode(&c, (rt_copy_progress_t *)field); break;
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

int rt_msg_encode(const rt_msg_t *msg, void **frame, size_t *len)
{
    const s_msg_spec_t *spec =
        msg->version ? s_spec_of_version(msg->type, msg->version) : s_spec_of_type(msg->type);
    msgpack_sbuffer sb;
    rt__wire_packer_t sp = {.err = RT_OK};

    *frame = NULL;
    *len = 0;
    if (!spec)
        return RT_EINVAL;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&sp.pk, &sb, msgpack_sbuffer_write);
    rt__wire_pack_header(&sp, spec->tag, s_msg_version(spec), strlen(spec->sig));
    for (size_t i = 0; spec->sig[i]; i++) {
        const char *field = (const char *)msg + spec->off[i];
        switch (spec->sig[i]) {
        case 's': rt__wire_pack_cstr(&sp, *(char *const *)field); break;
        case 't': s_pack_bintext(&sp, *(char *const *)field); break;
        case 'u': RT__WIRE_PACK(&sp, msgpack_pack_uint64(&sp.pk, *(const uint64_t *)field)); break;
        case 'i': RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, *(const int64_t *)field)); break;
        case 'e': {
            int64_t v = *(const int64_t *)field;
            if (v < RT_SUB_STREAMING || v > RT_SUB_LAST_STATE) {
                if (sp.err == RT_OK)
                    sp.err = RT_EINVAL;
                break;
            }
            RT__WIRE_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)v));
            break;
        }
        case 'b':
            if (*(const bool *)field)
                RT__WIRE_PACK(&sp, msgpack_pack_true(&sp.pk));
            else
                RT__WIRE_PACK(&sp, msgpack_pack_false(&sp.pk));
            break;
        case 'x':
            RT__WIRE_PACK(&sp, msgpack_pack_bin_with_body(&sp.pk, msg->data, msg->datalen));
            break;
        case 'T': s_pack_tables(&sp, msg); break;
        case 'P': rt__wire_progress_pack(&sp, (const rt_copy_progress_t *)field); break;
        case 'D': s_pack_ddl(&sp, msg, false); break;
        case 'E': s_pack_ddl(&sp, msg, true); break;
        }
    }
    return rt__wire_release(&sb, sp.err,
                            msg->type == RT_MSG_COPY_DATA ? RT_WIRE_MAX_RECORD : RT_WIRE_MAX_FRAME,
                            frame, len);
}
