/* tests/fuzz/fuzz_pgoutput.c - libFuzzer target for the pgoutput message decoder and printer. */
#include "pgoutput.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rt_pgoutput_t *s_dec;  /* outside stream blocks, reused as the publisher does */
static rt_pgoutput_t *s_sdec; /* inside a stream block (protocol 2) */
static FILE *s_devnull;       /* the printer writes here */

/* Aborts unless [p, p + n) lies inside [lo, hi). */
static void s_check_span(const void *p, size_t n, const char *lo, const char *hi)
{
    const char *c = p;
    if (!c || c < lo || c > hi || n > (size_t)(hi - c))
        abort();
}

/* Aborts unless s is a NUL-terminated string inside [lo, hi). */
static void s_check_str(const char *s, const char *lo, const char *hi)
{
    s_check_span(s, 0, lo, hi);
    if (!memchr(s, '\0', (size_t)(hi - s)))
        abort();
}

static void s_check_tuple(const rt_pgo_tuple_t *tup, const char *lo, const char *hi)
{
    if (tup->ncols && !tup->cols)
        abort();
    for (uint16_t i = 0; i < tup->ncols; i++) {
        const rt_pgo_col_t *col = &tup->cols[i];
        switch (col->kind) {
        case 'n':
        case 'u':
            if (col->len || col->data)
                abort();
            break;
        case 't':
        case 'b': s_check_span(col->data, col->len, lo, hi); break;
        default: abort();
        }
    }
}

/* Checks that everything a decoded message points at lies inside the input. */
static void s_check(const rt_pgo_msg_t *m, const char *lo, const char *hi)
{
    switch (m->type) {
    case 'B':
    case 'C': break;
    case 'O': s_check_str(m->u.origin.name, lo, hi); break;
    case 'R':
        s_check_str(m->u.relation.nspname, lo, hi);
        s_check_str(m->u.relation.relname, lo, hi);
        if (!strchr("dnfi", m->u.relation.replident) || m->u.relation.replident == '\0')
            abort();
        if (m->u.relation.natts && !m->u.relation.attrs)
            abort();
        for (uint16_t i = 0; i < m->u.relation.natts; i++) {
            if (m->u.relation.attrs[i].flags & ~1u)
                abort();
            s_check_str(m->u.relation.attrs[i].name, lo, hi);
        }
        break;
    case 'Y':
        s_check_str(m->u.type.nspname, lo, hi);
        s_check_str(m->u.type.typname, lo, hi);
        break;
    case 'I': s_check_tuple(&m->u.insert.newtup, lo, hi); break;
    case 'U':
        if (m->u.update.old_kind)
            s_check_tuple(&m->u.update.oldtup, lo, hi);
        s_check_tuple(&m->u.update.newtup, lo, hi);
        break;
    case 'D':
        if (m->u.del.old_kind != 'K' && m->u.del.old_kind != 'O')
            abort();
        s_check_tuple(&m->u.del.oldtup, lo, hi);
        break;
    case 'T':
        if ((m->u.truncate.flags & ~3u) || (m->u.truncate.nrels && !m->u.truncate.relids))
            abort();
        break;
    case 'M':
        s_check_str(m->u.message.prefix, lo, hi);
        s_check_span(m->u.message.content, m->u.message.len, lo, hi);
        break;
    case 'S':
    case 'E':
    case 'A': break;
    case 'c':
        if (m->u.stream_commit.flags)
            abort();
        break;
    default: abort();
    }
}

/* Decodes one input with dec and checks the result. */
static void s_one(rt_pgoutput_t *dec, const char *buf, size_t size)
{
    rt_pgo_msg_t msg;
    bool in_stream = rt_pgoutput_in_stream(dec);
    int rc = rt_pgoutput_decode(dec, buf, size, &msg);
    if (rc == RT_OK) {
        s_check(&msg, buf, buf + size);
        /* Only changes inside a block carry an xid. */
        if (msg.xid && (!in_stream || !strchr("RYIUDTM", msg.type)))
            abort();
        rt_pgo_msg_print(&msg, s_devnull);
        fputc('\n', s_devnull);
    } else if (rc != RT_EPROTO && rc != RT_ENOMEM) {
        abort();
    } else if (rt_pgoutput_in_stream(dec) != in_stream) {
        abort(); /* a message that does not decode leaves the state alone */
    }
}

/* Puts dec inside or outside a stream block again, whatever the input did. */
static void s_reset(rt_pgoutput_t *dec, bool in_stream)
{
    rt_pgo_msg_t msg;
    if (rt_pgoutput_in_stream(dec) == in_stream)
        return;
    if (in_stream ? rt_pgoutput_decode(dec, "S\0\0\0\1\1", 6, &msg)
                  : rt_pgoutput_decode(dec, "E", 1, &msg))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_dec) {
        s_dec = rt_pgoutput_new();
        s_sdec = rt_pgoutput_new();
        s_devnull = fopen("/dev/null", "w");
        if (!s_dec || !s_sdec || !s_devnull)
            abort();
    }
    s_reset(s_sdec, true);
    /* A private copy, so that a read past the message end is caught by ASan. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    if (size)
        memcpy(buf, data, size);
    /* The same bytes outside and inside a stream block; each decoder is put back in
     * its state afterwards, so that every input is decoded the same way again. */
    s_one(s_dec, buf, size);
    s_reset(s_dec, false);
    s_one(s_sdec, buf, size);
    s_reset(s_sdec, true);
    free(buf);
    return 0;
}
