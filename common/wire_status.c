/* common/wire_status.c - STATUS_REPLY, the publisher's status for rtctl and the web
 * page, and the names and copy progress that status and the messages report. */
#include "wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

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

void rt__wire_progress_pack(rt__wire_packer_t *sp, const rt_copy_progress_t *p)
{
    const uint64_t v[] = {p->tables_done, p->tables_total, p->rows,
                          p->bytes,       p->bytes_total,  p->elapsed_ms};
    RT__WIRE_PACK(sp, msgpack_pack_array(&sp->pk, 6));
    for (size_t i = 0; i < 6; i++)
        RT__WIRE_PACK(sp, msgpack_pack_uint64(&sp->pk, v[i]));
}

void rt__wire_progress_decode(rt__wire_cursor_t *c, rt_copy_progress_t *p)
{
    rt__wire_cursor_t pc;
    rt__wire_sub(c, &pc, 6);
    uint64_t *v[] = {&p->tables_done, &p->tables_total, &p->rows,
                     &p->bytes,       &p->bytes_total,  &p->elapsed_ms};
    for (size_t i = 0; i < 6; i++)
        *v[i] = rt__wire_uint(&pc, UINT64_MAX);
    if (pc.bad || p->tables_done > p->tables_total)
        c->bad = true;
}

/* ---------------------------------------------------------------------------------
 * STATUS_REPLY. */

#define S_STATUS_VERSION 3
#define S_STATUS_FIELDS 22u    /* after the version */
#define S_STATUS_V2_FIELDS 20u /* version 2: without the two upstream fields */
#define S_STATUS_V1_FIELDS 16u /* version 1: without the four after subs either */
#define S_STATUS_SUB_FIELDS 11u

/* Packs a fixed-size NUL-terminated name; RT_EINVAL if it fills its buffer. */
static void s_pack_fixed(rt__wire_packer_t *sp, const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    if (n == size) {
        if (sp->err == RT_OK)
            sp->err = RT_EINVAL;
        return;
    }
    RT__WIRE_PACK(sp, msgpack_pack_str_with_body(&sp->pk, s, n));
}

/* Reads a str field into a fixed buffer of size bytes. */
static void s_str_fixed(rt__wire_cursor_t *c, char *dst, size_t size)
{
    const char *p;
    uint32_t n;
    rt__wire_str(c, &p, &n);
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
    rt__wire_packer_t sp = {.err = RT_OK};

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
    rt__wire_pack_header(&sp, "STATUS_REPLY", S_STATUS_VERSION, S_STATUS_FIELDS);
    s_pack_fixed(&sp, st->source, sizeof st->source);
    s_pack_fixed(&sp, st->slot, sizeof st->slot);
    const uint64_t nums[] = {st->first_seq,     st->head_seq,     st->records,
                             st->outbox_bytes,  st->received_lsn, st->confirmed_lsn,
                             st->captured_txns, st->captured_rows};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        RT__WIRE_PACK(&sp, msgpack_pack_uint64(&sp.pk, nums[i]));
    RT__WIRE_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)st->capture_state));
    RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, st->oldest_ts));
    RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, st->head_ts));
    RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, st->now_ts));
    RT__WIRE_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)st->security));
    RT__WIRE_PACK(&sp, msgpack_pack_array(&sp.pk, st->nsubs));
    for (uint32_t i = 0; i < st->nsubs && sp.err == RT_OK; i++) {
        const rt_status_sub_t *sub = &st->subs[i];
        if (sub->state < RT_SUB_STREAMING || sub->state > RT_SUB_LAST_STATE) {
            sp.err = RT_EINVAL;
            break;
        }
        RT__WIRE_PACK(&sp, msgpack_pack_array(&sp.pk, S_STATUS_SUB_FIELDS));
        s_pack_fixed(&sp, sub->name, sizeof sub->name);
        RT__WIRE_PACK(&sp, msgpack_pack_uint64(&sp.pk, sub->acked_seq));
        RT__WIRE_PACK(&sp, msgpack_pack_uint8(&sp.pk, (uint8_t)sub->state));
        RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->seen_ms_ago));
        RT__WIRE_PACK(&sp, msgpack_pack_uint64(&sp.pk, sub->conflicts));
        RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->commit_ts));
        RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->applied_at));
        RT__WIRE_PACK(&sp, msgpack_pack_uint64(&sp.pk, sub->lag_bytes));
        RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, sub->lag_ms));
        s_pack_fixed(&sp, sub->error, sizeof sub->error);
        rt__wire_progress_pack(&sp, &sub->copy);
    }
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        RT__WIRE_PACK(&sp, msgpack_pack_int64(&sp.pk, figures[i]));
    s_pack_fixed(&sp, st->upstream, sizeof st->upstream);
    RT__WIRE_PACK(&sp, msgpack_pack_uint64(&sp.pk, st->upstream_head));
    return rt__wire_release(&sb, sp.err, RT_WIRE_MAX_FRAME, frame, len);
}

int rt_status_decode(const void *frame, size_t len, rt_status_t *st)
{
    msgpack_unpacked u;
    rt__wire_cursor_t c, subs;
    int err;

    memset(st, 0, sizeof *st);
    msgpack_unpacked_init(&u);
    if ((err = rt__wire_unpack(&u, frame, len)) != RT_OK)
        goto cleanup;
    /* Older versions are told by their number of fields; the header must agree. */
    rt__wire_open(&c, &u.data, UINT32_MAX);
    bool v1 = c.n == S_STATUS_V1_FIELDS + 2, v2 = c.n == S_STATUS_V2_FIELDS + 2;
    if (!v1 && !v2 && c.n != S_STATUS_FIELDS + 2)
        c.bad = true;
    rt__wire_header(&c, "STATUS_REPLY", v1 ? 1 : v2 ? 2 : S_STATUS_VERSION);
    s_str_fixed(&c, st->source, sizeof st->source);
    s_str_fixed(&c, st->slot, sizeof st->slot);
    st->first_seq = rt__wire_uint(&c, UINT64_MAX);
    st->head_seq = rt__wire_uint(&c, UINT64_MAX);
    st->records = rt__wire_uint(&c, UINT64_MAX);
    st->outbox_bytes = rt__wire_uint(&c, UINT64_MAX);
    st->received_lsn = rt__wire_uint(&c, UINT64_MAX);
    st->confirmed_lsn = rt__wire_uint(&c, UINT64_MAX);
    st->captured_txns = rt__wire_uint(&c, UINT64_MAX);
    st->captured_rows = rt__wire_uint(&c, UINT64_MAX);
    st->capture_state = (int64_t)rt__wire_uint(&c, RT_CAPTURE_NONE);
    st->oldest_ts = rt__wire_int(&c, INT64_MIN, INT64_MAX);
    st->head_ts = rt__wire_int(&c, INT64_MIN, INT64_MAX);
    st->now_ts = rt__wire_int(&c, INT64_MIN, INT64_MAX);
    st->security = (int64_t)rt__wire_uint(&c, RT_SECURITY_INSECURE);
    rt__wire_sub(&c, &subs, UINT32_MAX);
    int64_t *figures[] = {&st->retained_wal_bytes, &st->source_lag_bytes, &st->source_lag_ms,
                          &st->outbox_limit_bytes};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        *figures[i] = v1 ? -1 : rt__wire_int(&c, -1, INT64_MAX);
    if (!v1 && !v2) {
        s_str_fixed(&c, st->upstream, sizeof st->upstream);
        st->upstream_head = rt__wire_uint(&c, UINT64_MAX);
    }
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
        rt__wire_cursor_t sc;
        rt__wire_sub(&subs, &sc, S_STATUS_SUB_FIELDS);
        s_str_fixed(&sc, sub->name, sizeof sub->name);
        sub->acked_seq = rt__wire_uint(&sc, UINT64_MAX);
        sub->state = (int64_t)rt__wire_uint(&sc, RT_SUB_LAST_STATE);
        sub->seen_ms_ago = rt__wire_int(&sc, INT64_MIN, INT64_MAX);
        sub->conflicts = rt__wire_uint(&sc, UINT64_MAX);
        sub->commit_ts = rt__wire_int(&sc, INT64_MIN, INT64_MAX);
        sub->applied_at = rt__wire_int(&sc, INT64_MIN, INT64_MAX);
        sub->lag_bytes = rt__wire_uint(&sc, UINT64_MAX);
        sub->lag_ms = rt__wire_int(&sc, INT64_MIN, INT64_MAX);
        s_str_fixed(&sc, sub->error, sizeof sub->error);
        rt__wire_progress_decode(&sc, &sub->copy);
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
