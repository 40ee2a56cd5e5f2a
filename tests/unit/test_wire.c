/* tests/unit/test_wire.c - round trips, malformed frames and byte flips of common/wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* ---- helpers */

static rt_value_t s_text(const char *s)
{
    rt_value_t v = {RT_VAL_TEXT, (uint32_t)strlen(s), s};
    return v;
}

static const rt_value_t s_null = {RT_VAL_NULL, 0, NULL};
static const rt_value_t s_unchanged = {RT_VAL_UNCHANGED, 0, NULL};

/* Returns a malloc'd copy of n bytes, so that ASan sees any read past the frame. */
static void *s_copy(const void *p, size_t n)
{
    void *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

static void s_assert_values(const rt_value_t *got, const rt_value_t *want, uint32_t n,
                            const void *frame, size_t len)
{
    const char *lo = frame, *hi = lo + len;
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(got[i].kind, want[i].kind);
        if (want[i].kind != RT_VAL_TEXT) {
            assert_null(got[i].data);
            continue;
        }
        assert_int_equal(got[i].len, want[i].len);
        assert_memory_equal(got[i].data, want[i].data, want[i].len);
        assert_int_equal(got[i].data[got[i].len], '\0');
        /* values are borrowed from the frame, not copied */
        assert_true(got[i].data >= lo && got[i].data + got[i].len < hi);
    }
}

static void s_assert_relation(const rt_relation_t *got, const rt_relation_t *want)
{
    assert_string_equal(got->schema, want->schema);
    assert_string_equal(got->table, want->table);
    assert_int_equal(got->replident, want->replident);
    assert_int_equal(got->ncols, want->ncols);
    for (uint32_t i = 0; i < want->ncols; i++) {
        assert_string_equal(got->cols[i].name, want->cols[i].name);
        assert_int_equal(got->cols[i].typoid, want->cols[i].typoid);
        assert_int_equal(got->cols[i].typmod, want->cols[i].typmod);
        assert_int_equal(got->cols[i].key, want->cols[i].key);
    }
}

static rt_column_t s_cols_a[] = {
    {"id", 23, -1, true}, {"name", 1043, 68, false}, {"doc", 25, -1, false}};
static const rt_relation_t s_rel_a = {"public", "accounts", 'd', 3, s_cols_a};
static rt_column_t s_cols_b[] = {{"k", 20, -1, true}, {"v", 1700, 655366, false}};
static const rt_relation_t s_rel_b = {"Sales Dept", "ledger \"x\"", 'f', 2, s_cols_b};
static const rt_relation_t s_rel_empty = {"s", "nocols", 'n', 0, NULL};

/* Builds a record that holds every change kind; returns a malloc'd copy of it. */
static void *s_full_record(rt_record_builder_t *b, const char *origin, size_t *len)
{
    const void *data;
    rt_value_t ins[3] = {s_text("1"), s_text(""), s_null};
    rt_value_t upd_old_k[3] = {s_text("1"), s_null, s_null};
    rt_value_t upd_new[3] = {s_text("1"), s_text("bob"), s_unchanged};
    rt_value_t upd_old_o[2] = {s_text("7"), s_text("1.5")};
    rt_value_t upd_new_o[2] = {s_text("7"), s_text("2.5")};
    rt_value_t del_k[3] = {s_text("1"), s_null, s_null};
    rt_value_t del_o[2] = {s_text("8"), s_null};
    uint32_t trels[2];

    rt_record_builder_start(b, 42, 4000000000u, 0x16B374D848ull, -5, origin);
    uint32_t a = rt_record_builder_relation(b, &s_rel_a);
    uint32_t r_b = rt_record_builder_relation(b, &s_rel_b);
    uint32_t e = rt_record_builder_relation(b, &s_rel_empty);
    assert_int_equal(a, 0);
    assert_int_equal(r_b, 1);
    assert_int_equal(e, 2);
    rt_record_builder_insert(b, a, 3, ins);
    rt_record_builder_update(b, a, 'K', 3, upd_old_k, 3, upd_new);
    rt_record_builder_update(b, r_b, 'O', 2, upd_old_o, 2, upd_new_o);
    rt_record_builder_update(b, a, 0, 0, NULL, 3, upd_new);
    rt_record_builder_delete(b, a, 'K', 3, del_k);
    rt_record_builder_delete(b, r_b, 'O', 2, del_o);
    trels[0] = a;
    trels[1] = r_b;
    rt_record_builder_truncate(b, 3, 2, trels);
    rt_record_builder_truncate(b, 0, 1, &trels[1]);
    rt_record_builder_insert(b, e, 0, NULL);
    assert_int_equal(rt_record_builder_nchanges(b), 9);
    assert_true(rt_record_builder_size(b) > 0);
    assert_int_equal(
        rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 0x16B374D900ull, &data, len), 0);
    return s_copy(data, *len);
}

static void s_check_full_record(const rt_record_t *r, const char *origin, const void *frame,
                                size_t len)
{
    rt_value_t ins[3] = {s_text("1"), s_text(""), s_null};
    rt_value_t upd_old_k[3] = {s_text("1"), s_null, s_null};
    rt_value_t upd_new[3] = {s_text("1"), s_text("bob"), s_unchanged};
    rt_value_t upd_old_o[2] = {s_text("7"), s_text("1.5")};
    rt_value_t upd_new_o[2] = {s_text("7"), s_text("2.5")};
    rt_value_t del_o[2] = {s_text("8"), s_null};
    const rt_change_t *c = r->changes;

    assert_int_equal(r->seq, 42);
    assert_int_equal(r->xid, 4000000000u);
    assert_int_equal(r->flags, RT_REC_FIRST | RT_REC_LAST);
    assert_int_equal(r->commit_lsn, 0x16B374D848ull);
    assert_int_equal(r->end_lsn, 0x16B374D900ull);
    assert_int_equal(r->commit_ts, -5);
    if (origin)
        assert_string_equal(r->origin, origin);
    else
        assert_null(r->origin);
    assert_int_equal(r->nrels, 3);
    s_assert_relation(&r->rels[0], &s_rel_a);
    s_assert_relation(&r->rels[1], &s_rel_b);
    s_assert_relation(&r->rels[2], &s_rel_empty);
    assert_int_equal(r->nchanges, 9);

    assert_int_equal(c[0].op, 'I');
    assert_int_equal(c[0].rel, 0);
    assert_int_equal(c[0].old_kind, 0);
    assert_int_equal(c[0].nold, 0);
    assert_null(c[0].old);
    assert_int_equal(c[0].nnew, 3);
    s_assert_values(c[0].new_, ins, 3, frame, len);

    assert_int_equal(c[1].op, 'U');
    assert_int_equal(c[1].old_kind, 'K');
    assert_int_equal(c[1].nold, 3);
    s_assert_values(c[1].old, upd_old_k, 3, frame, len);
    assert_int_equal(c[1].nnew, 3);
    s_assert_values(c[1].new_, upd_new, 3, frame, len);

    assert_int_equal(c[2].op, 'U');
    assert_int_equal(c[2].rel, 1);
    assert_int_equal(c[2].old_kind, 'O');
    s_assert_values(c[2].old, upd_old_o, 2, frame, len);
    s_assert_values(c[2].new_, upd_new_o, 2, frame, len);

    assert_int_equal(c[3].op, 'U');
    assert_int_equal(c[3].old_kind, 0);
    assert_int_equal(c[3].nold, 0);
    assert_null(c[3].old);
    s_assert_values(c[3].new_, upd_new, 3, frame, len);

    assert_int_equal(c[4].op, 'D');
    assert_int_equal(c[4].old_kind, 'K');
    s_assert_values(c[4].old, upd_old_k, 3, frame, len);
    assert_int_equal(c[4].nnew, 0);
    assert_null(c[4].new_);

    assert_int_equal(c[5].op, 'D');
    assert_int_equal(c[5].rel, 1);
    assert_int_equal(c[5].old_kind, 'O');
    s_assert_values(c[5].old, del_o, 2, frame, len);

    assert_int_equal(c[6].op, 'T');
    assert_int_equal(c[6].trunc_flags, 3);
    assert_int_equal(c[6].ntrunc, 2);
    assert_int_equal(c[6].trunc_rels[0], 0);
    assert_int_equal(c[6].trunc_rels[1], 1);

    assert_int_equal(c[7].op, 'T');
    assert_int_equal(c[7].trunc_flags, 0);
    assert_int_equal(c[7].ntrunc, 1);
    assert_int_equal(c[7].trunc_rels[0], 1);

    assert_int_equal(c[8].op, 'I');
    assert_int_equal(c[8].rel, 2);
    assert_int_equal(c[8].nnew, 0);
}

/* Every frame shorter than the whole must be refused. */
static void s_assert_truncations_fail(const void *frame, size_t len,
                                      int (*decode)(const void *, size_t))
{
    for (size_t n = 0; n < len; n++) {
        void *p = s_copy(frame, n);
        assert_int_equal(decode(p, n), RT_EPROTO);
        free(p);
    }
}

static rt_record_decoder_t *s_dec;

static int s_decode_record(const void *frame, size_t len)
{
    const rt_record_t *r = (const rt_record_t *)1;
    int rc = rt_record_decode(s_dec, frame, len, &r);
    if (rc != RT_OK)
        assert_null(r);
    return rc;
}

static int s_decode_msg(const void *frame, size_t len)
{
    rt_msg_t m;
    int rc = rt_msg_decode(frame, len, &m);
    rt_msg_clear(&m);
    return rc;
}

static int s_decode_status(const void *frame, size_t len)
{
    rt_status_t st;
    int rc = rt_status_decode(frame, len, &st);
    if (rc != RT_OK) {
        assert_null(st.subs);
        assert_int_equal(st.nsubs, 0);
    }
    rt_status_clear(&st);
    return rc;
}

static int s_setup(void **state)
{
    (void)state;
    s_dec = rt_record_decoder_new();
    return s_dec ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    rt_record_decoder_destroy(&s_dec);
    assert_null(s_dec);
    rt_record_decoder_destroy(&s_dec);
    return 0;
}

/* ---- records */

static void test_record_roundtrip(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const rt_record_t *r;
    size_t len;

    const char *origins[] = {"pg_7", NULL, ""};
    for (size_t i = 0; i < 3; i++) {
        void *frame = s_full_record(b, origins[i], &len);
        assert_int_equal(rt_msg_peek_type(frame, len), RT_MSG_REC);
        assert_int_equal(rt_wire_prevalidate(frame, len), 0);
        assert_int_equal(rt_record_decode(s_dec, frame, len, &r), 0);
        s_check_full_record(r, origins[i], frame, len);
        /* a control-message decoder refuses a record */
        assert_int_equal(s_decode_msg(frame, len), RT_EPROTO);
        free(frame);
    }
    rt_record_builder_destroy(&b);
    assert_null(b);
    rt_record_builder_destroy(&b);
}

static void test_record_big_value(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const rt_record_t *r;
    const void *data;
    size_t len, big = 100 * 1024;
    char *text = malloc(big + 1);

    for (size_t i = 0; i < big; i++)
        text[i] = (char)('a' + i % 26);
    text[big] = '\0';
    rt_value_t row[3] = {s_text("5"), s_text(text), s_text("x")};
    rt_record_builder_start(b, 1, 7, 100, 0, NULL);
    uint32_t rel = rt_record_builder_relation(b, &s_rel_a);
    rt_record_builder_insert(b, rel, 3, row);
    assert_true(rt_record_builder_size(b) > big);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 200, &data, &len), 0);
    void *frame = s_copy(data, len);
    assert_int_equal(rt_record_decode(s_dec, frame, len, &r), 0);
    assert_int_equal(r->nchanges, 1);
    s_assert_values(r->changes[0].new_, row, 3, frame, len);
    assert_int_equal(strlen(r->changes[0].new_[1].data), big);
    free(frame);
    free(text);
    rt_record_builder_destroy(&b);
}

/* A transaction cut into three records: FIRST, middle, LAST. */
static void test_record_multi_flags(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const rt_record_t *r;
    const void *data;
    size_t len;
    const uint8_t flags[] = {RT_REC_FIRST, 0, RT_REC_LAST};

    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        rt_value_t row[2] = {s_text(id), s_null};
        rt_record_builder_start(b, 10 + (uint64_t)i, 99, 5000, 123456789, "up");
        uint32_t rel = rt_record_builder_relation(b, &s_rel_b);
        for (int j = 0; j <= i; j++)
            rt_record_builder_insert(b, rel, 2, row);
        assert_int_equal(rt_record_builder_nchanges(b), (uint32_t)i + 1);
        assert_int_equal(rt_record_builder_finish(b, flags[i], i == 2 ? 5100 : 0, &data, &len), 0);
        assert_int_equal(rt_record_decode(s_dec, data, len, &r), 0);
        assert_int_equal(r->seq, 10 + (uint64_t)i);
        assert_int_equal(r->xid, 99);
        assert_int_equal(r->flags, flags[i]);
        assert_int_equal(r->end_lsn, i == 2 ? 5100 : 0);
        assert_int_equal(r->commit_ts, 123456789);
        assert_string_equal(r->origin, "up");
        assert_int_equal(r->nchanges, (uint32_t)i + 1);
        s_assert_values(r->changes[i].new_, row, 2, data, len);
    }
    /* finish twice gives the same frame */
    const void *again;
    size_t len2;
    assert_int_equal(rt_record_builder_finish(b, RT_REC_LAST, 5100, &again, &len2), 0);
    assert_int_equal(len2, len);
    /* an empty record is valid */
    rt_record_builder_start(b, 1, 1, 1, 1, NULL);
    assert_int_equal(rt_record_builder_finish(b, 3, 0, &data, &len), 0);
    assert_int_equal(rt_record_decode(s_dec, data, len, &r), 0);
    assert_int_equal(r->nrels, 0);
    assert_int_equal(r->nchanges, 0);
    rt_record_builder_destroy(&b);
}

/* The worked example of schemas/wire.md, byte for byte. */
static void test_record_golden(void **state)
{
    (void)state;
    static const unsigned char want[] = {
        0x9b, 0xa3, 'R',  'E',  'C',  0x01, 0x07, 0xcd, 0x02, 0xe4, 0x03, 0xce, 0x01,
        0x6e, 0x36, 0x00, 0xce, 0x01, 0x6e, 0x36, 0x30, 0xce, 0x3b, 0x9a, 0xca, 0x00,
        0xc0, 0x91, 0x94, 0xa6, 'p',  'u',  'b',  'l',  'i',  'c',  0xa1, 't',  0x64,
        0x92, 0x94, 0xa2, 'i',  'd',  0x17, 0xff, 0xc3, 0x94, 0xa1, 'v',  0x19, 0xff,
        0xc2, 0x91, 0x93, 0x49, 0x00, 0x92, 0xc4, 0x02, '1',  0x00, 0xc0};
    rt_column_t cols[] = {{"id", 23, -1, true}, {"v", 25, -1, false}};
    rt_relation_t rel = {"public", "t", 'd', 2, cols};
    rt_value_t row[2] = {s_text("1"), s_null};
    rt_record_builder_t *b = rt_record_builder_new();
    const void *data;
    size_t len;

    rt_record_builder_start(b, 7, 740, 0x16E3600, 1000000000, NULL);
    rt_record_builder_insert(b, rt_record_builder_relation(b, &rel), 2, row);
    assert_int_equal(rt_record_builder_finish(b, 3, 0x16E3630, &data, &len), 0);
    if (len != sizeof want || memcmp(data, want, len) != 0) {
        for (size_t i = 0; i < len; i++)
            fprintf(stderr, "%02x%s", ((const unsigned char *)data)[i], i + 1 < len ? " " : "\n");
    }
    assert_int_equal(len, sizeof want);
    assert_memory_equal(data, want, len);
    rt_record_builder_destroy(&b);
}

static void test_builder_invalid(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const void *data;
    size_t len;
    rt_value_t row3[3] = {s_text("1"), s_null, s_null};
    rt_value_t bad_len = {RT_VAL_TEXT, 3, "a\0b"};
    rt_value_t bad_kind = {7, 0, NULL};
    rt_value_t nul_row[3] = {s_text("1"), bad_len, s_null};
    rt_value_t kind_row[3] = {s_text("1"), bad_kind, s_null};
    rt_relation_t bad_rel = s_rel_a;
    bad_rel.replident = 'x';
    uint32_t five = 5;
    char longname[5000];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    rt_relation_t long_rel = s_rel_a;
    long_rel.table = longname;

    for (int k = 0; k < 11; k++) {
        rt_record_builder_start(b, 1, 1, 1, 1, k == 10 ? longname : NULL);
        uint32_t rel = rt_record_builder_relation(b, k == 8   ? &bad_rel
                                                     : k == 9 ? &long_rel
                                                              : &s_rel_a);
        switch (k) {
        case 0: rt_record_builder_insert(b, rel + 1, 3, row3); break;
        case 1: rt_record_builder_insert(b, rel, 2, row3); break;
        case 2: rt_record_builder_insert(b, rel, 3, nul_row); break;
        case 3: rt_record_builder_insert(b, rel, 3, kind_row); break;
        case 4: rt_record_builder_update(b, rel, 'X', 3, row3, 3, row3); break;
        case 5: rt_record_builder_update(b, rel, 0, 3, row3, 3, row3); break;
        case 6: rt_record_builder_delete(b, rel, 0, 3, row3); break;
        case 7: rt_record_builder_truncate(b, 0, 1, &five); break;
        default: rt_record_builder_insert(b, rel, 3, row3); break;
        }
        assert_int_equal(rt_record_builder_finish(b, 3, 0, &data, &len), RT_EINVAL);
        assert_null(data);
    }
    /* bad flags */
    rt_record_builder_start(b, 1, 1, 1, 1, NULL);
    assert_int_equal(rt_record_builder_finish(b, 4, 0, &data, &len), RT_EINVAL);
    /* start clears the error */
    rt_record_builder_start(b, 1, 1, 1, 1, NULL);
    rt_record_builder_insert(b, rt_record_builder_relation(b, &s_rel_a), 3, row3);
    assert_int_equal(rt_record_builder_finish(b, 3, 0, &data, &len), 0);
    rt_record_builder_destroy(&b);
}

/* 10,000 records through one builder and one decoder: buffers stop growing early. */
static void test_builder_reuse(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const rt_record_t *r;
    const void *data, *first = NULL;
    size_t len, moves = 0, heap_after_warmup = 0;
    rt_value_t row[3] = {s_text("123"), s_text("some text value"), s_null};

    for (int i = 0; i < 10000; i++) {
        rt_record_builder_start(b, (uint64_t)i + 1, (uint32_t)i, 1, 1, i % 2 ? "o" : NULL);
        uint32_t rel = rt_record_builder_relation(b, &s_rel_a);
        for (int j = 0; j < 1 + i % 50; j++)
            rt_record_builder_insert(b, rel, 3, row);
        assert_int_equal(rt_record_builder_finish(b, 3, 0, &data, &len), 0);
        assert_int_equal(rt_record_decode(s_dec, data, len, &r), 0);
        assert_int_equal(r->nchanges, 1 + i % 50);
        if (i == 100)
            heap_after_warmup = mallinfo2().uordblks;
        if (i >= 100) {
            if (data != first)
                moves++;
        }
        first = data;
    }
    /* the output buffer never moved after the warm-up, and the heap did not grow */
    assert_int_equal(moves, 0);
    size_t heap_end = mallinfo2().uordblks;
    assert_true(heap_end <= heap_after_warmup + 4096);
    rt_record_builder_destroy(&b);
}

/* ---- malformed records, built field by field */

enum {
    F_NONE,
    F_TAG,
    F_VERSION,
    F_NFIELDS,
    F_SEQ_STR,
    F_SEQ_NEG,
    F_XID_BIG,
    F_FLAGS,
    F_TS_FLOAT,
    F_ORIGIN_INT,
    F_ORIGIN_NUL,
    F_ORIGIN_LONG,
    F_RELS_MAP,
    F_REL_SHORT,
    F_REPLIDENT,
    F_TYPOID_BIG,
    F_TYPMOD_BIG,
    F_KEY_INT,
    F_COLNAME_BIN,
    F_REL_INDEX,
    F_ROW_SHORT,
    F_ROW_LONG,
    F_BIN_NO_NUL,
    F_BIN_NUL_INSIDE,
    F_BIN_EMPTY,
    F_VALUE_TRUE,
    F_VALUE_INT,
    F_VALUE_STR,
    F_UPD_KIND_X,
    F_UPD_K_NIL,
    F_UPD_0_ROW,
    F_DEL_KIND_0,
    F_TRUNC_REL,
    F_TRUNC_FLAGS,
    F_OP_UNKNOWN,
    F_OP_STR,
    F_CHANGE_SHORT,
    F_EXTRA_FIELD,
    F_INSERT_EXTRA,
    F_REL_INDEX_NEG,
    F_CHANGES_MAP,
    F_COUNT
};

static void s_pack_bin(msgpack_packer *pk, const char *p, size_t n)
{
    msgpack_pack_bin_with_body(pk, p, n);
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* A REC frame with one relation and I, U, U, D, T changes, with fault f injected. */
static void s_faulty_record(int f, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    char longname[5000];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, f == F_NFIELDS ? 10 : f == F_EXTRA_FIELD ? 12 : 11);
    s_pack_str(&pk, f == F_TAG ? "RECS" : "REC");
    msgpack_pack_uint8(&pk, f == F_VERSION ? 2 : 1);
    if (f == F_SEQ_STR)
        s_pack_str(&pk, "1");
    else if (f == F_SEQ_NEG)
        msgpack_pack_int8(&pk, -1);
    else
        msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, f == F_XID_BIG ? 0x100000000ull : 5);
    msgpack_pack_uint8(&pk, f == F_FLAGS ? 4 : 3);
    msgpack_pack_uint64(&pk, 100);
    msgpack_pack_uint64(&pk, 200);
    if (f == F_TS_FLOAT)
        msgpack_pack_double(&pk, 1.0);
    else
        msgpack_pack_int64(&pk, 12345);
    if (f == F_ORIGIN_INT)
        msgpack_pack_uint8(&pk, 1);
    else if (f == F_ORIGIN_NUL)
        msgpack_pack_str_with_body(&pk, "a\0b", 3);
    else if (f == F_ORIGIN_LONG)
        s_pack_str(&pk, longname);
    else
        msgpack_pack_nil(&pk);

    if (f == F_RELS_MAP) {
        msgpack_pack_map(&pk, 0);
    } else {
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, f == F_REL_SHORT ? 3 : 4);
        s_pack_str(&pk, "public");
        s_pack_str(&pk, "t");
        msgpack_pack_uint8(&pk, f == F_REPLIDENT ? 'x' : 'd');
        msgpack_pack_array(&pk, 2);
        msgpack_pack_array(&pk, 4);
        if (f == F_COLNAME_BIN)
            s_pack_bin(&pk, "id", 2);
        else
            s_pack_str(&pk, "id");
        msgpack_pack_uint64(&pk, f == F_TYPOID_BIG ? 0x100000000ull : 23);
        msgpack_pack_int64(&pk, f == F_TYPMOD_BIG ? 0x80000000ll : -1);
        if (f == F_KEY_INT)
            msgpack_pack_uint8(&pk, 1);
        else
            msgpack_pack_true(&pk);
        msgpack_pack_array(&pk, 4);
        s_pack_str(&pk, "v");
        msgpack_pack_uint32(&pk, 25);
        msgpack_pack_int32(&pk, -1);
        msgpack_pack_false(&pk);
    }

    if (f == F_CHANGES_MAP) {
        msgpack_pack_map(&pk, 0);
        goto tail;
    }
    msgpack_pack_array(&pk, 5);
    /* insert */
    msgpack_pack_array(&pk, f == F_INSERT_EXTRA ? 4 : f == F_CHANGE_SHORT ? 2 : 3);
    if (f == F_OP_STR)
        s_pack_str(&pk, "I");
    else
        msgpack_pack_uint8(&pk, f == F_OP_UNKNOWN ? 'X' : 'I');
    if (f == F_REL_INDEX_NEG)
        msgpack_pack_int8(&pk, -1);
    else
        msgpack_pack_uint32(&pk, f == F_REL_INDEX ? 1 : 0);
    if (f != F_CHANGE_SHORT) {
        msgpack_pack_array(&pk, f == F_ROW_SHORT ? 1 : f == F_ROW_LONG ? 3 : 2);
        if (f == F_BIN_NO_NUL)
            s_pack_bin(&pk, "12", 2);
        else if (f == F_BIN_NUL_INSIDE)
            s_pack_bin(&pk, "1\0002", 4);
        else if (f == F_BIN_EMPTY)
            s_pack_bin(&pk, "", 0);
        else if (f == F_VALUE_STR)
            s_pack_str(&pk, "12");
        else
            s_pack_bin(&pk, "12", 3);
        if (f != F_ROW_SHORT) {
            if (f == F_VALUE_TRUE)
                msgpack_pack_true(&pk);
            else if (f == F_VALUE_INT)
                msgpack_pack_uint8(&pk, 0);
            else
                msgpack_pack_nil(&pk);
        }
        if (f == F_ROW_LONG)
            msgpack_pack_nil(&pk);
        if (f == F_INSERT_EXTRA)
            msgpack_pack_nil(&pk);
    }
    /* update with key */
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint8(&pk, 'U');
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, f == F_UPD_KIND_X ? 'X' : 'K');
    if (f == F_UPD_K_NIL) {
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_array(&pk, 2);
        s_pack_bin(&pk, "1", 2);
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_array(&pk, 2);
    s_pack_bin(&pk, "1", 2);
    msgpack_pack_false(&pk);
    /* update without old row */
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint8(&pk, 'U');
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 0);
    if (f == F_UPD_0_ROW) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_array(&pk, 2);
    s_pack_bin(&pk, "2", 2);
    msgpack_pack_nil(&pk);
    /* delete */
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 'D');
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, f == F_DEL_KIND_0 ? 0 : 'O');
    msgpack_pack_array(&pk, 2);
    s_pack_bin(&pk, "2", 2);
    s_pack_bin(&pk, "", 1);
    /* truncate */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 'T');
    msgpack_pack_uint8(&pk, f == F_TRUNC_FLAGS ? 4 : 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint8(&pk, f == F_TRUNC_REL ? 1 : 0);
tail:
    if (f == F_EXTRA_FIELD)
        msgpack_pack_nil(&pk);
}

static void test_record_malformed_fields(void **state)
{
    (void)state;
    const rt_record_t *r;
    for (int f = 0; f < F_COUNT; f++) {
        msgpack_sbuffer sb;
        s_faulty_record(f, &sb);
        void *frame = s_copy(sb.data, sb.size);
        int rc = rt_record_decode(s_dec, frame, sb.size, &r);
        if (f == F_NONE) {
            assert_int_equal(rc, 0);
            assert_int_equal(r->nchanges, 5);
            assert_string_equal(r->changes[4].op == 'T' ? "T" : "?", "T");
            assert_int_equal(r->changes[3].old[1].len, 0);
            assert_string_equal(r->changes[3].old[1].data, "");
            assert_int_equal(r->changes[1].new_[1].kind, RT_VAL_UNCHANGED);
        } else {
            if (rc != RT_EPROTO)
                fprintf(stderr, "fault %d decoded with %d\n", f, rc);
            assert_int_equal(rc, RT_EPROTO);
            assert_null(r);
        }
        free(frame);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_record_truncations(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    size_t len;
    void *frame = s_full_record(b, "origin", &len);
    s_assert_truncations_fail(frame, len, s_decode_record);
    /* trailing bytes */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, frame, len);
    longer[len] = 0xc0;
    assert_int_equal(s_decode_record(longer, len + 1), RT_EPROTO);
    assert_int_equal(rt_wire_prevalidate(longer, len + 1), RT_EPROTO);
    /* the same bytes are still fine */
    assert_int_equal(s_decode_record(longer, len), 0);
    free(longer);
    free(frame);
    rt_record_builder_destroy(&b);
}

/* ---- records of sequences */

/* Faults of a hand-packed record of sequences. */
enum {
    Q_NONE,
    Q_SHORT,      /* a sequence change of 3 elements */
    Q_INT_NAME,   /* its name an integer */
    Q_UINT_MAX,   /* its value above INT64_MAX */
    Q_WITH_REL,   /* the record has a relation */
    Q_WITH_TRUNC, /* a TRUNCATE beside it */
    Q_FIRST_ONLY, /* flags FIRST, not FIRST|LAST */
    Q_COUNT
};

static void s_sequence_record(int f, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 11);
    msgpack_pack_str_with_body(&pk, "REC", 3);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, 9);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, f == Q_FIRST_ONLY ? RT_REC_FIRST : RT_REC_FIRST | RT_REC_LAST);
    msgpack_pack_uint32(&pk, 0x1000);
    msgpack_pack_uint32(&pk, 0x1000);
    msgpack_pack_int64(&pk, 5);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, f == Q_WITH_REL ? 1 : 0);
    if (f == Q_WITH_REL) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str_with_body(&pk, "public", 6);
        msgpack_pack_str_with_body(&pk, "t", 1);
        msgpack_pack_uint8(&pk, 'd');
        msgpack_pack_array(&pk, 0);
    }
    msgpack_pack_array(&pk, f == Q_WITH_TRUNC ? 2 : 1);
    msgpack_pack_array(&pk, f == Q_SHORT ? 3 : 4);
    msgpack_pack_uint8(&pk, 'Q');
    msgpack_pack_str_with_body(&pk, "public", 6);
    if (f == Q_INT_NAME)
        msgpack_pack_uint8(&pk, 7);
    else
        msgpack_pack_str_with_body(&pk, "t_id_seq", 8);
    if (f == Q_UINT_MAX)
        msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
    else if (f != Q_SHORT)
        msgpack_pack_int64(&pk, -42);
    if (f == Q_WITH_TRUNC) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint8(&pk, 'T');
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_array(&pk, 0);
    }
}

/* A DDL change round-trips in its place among the rows; bad ones are refused. */
static void test_record_ddl(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const rt_record_t *r;
    const void *data;
    size_t len;
    rt_column_t cols[] = {{"id", 23, -1, true}};
    rt_relation_t rel = {"public", "t", 'd', 1, cols};
    rt_value_t one[] = {{RT_VAL_TEXT, 1, "1"}};
    char big[10000];
    memset(big, 'x', sizeof big - 1);
    memcpy(big, "COMMENT ON TABLE t IS '", 23);
    big[sizeof big - 2] = '\'';
    big[sizeof big - 1] = '\0';

    rt_record_builder_start(b, 20, 99, 0x3000, 5, NULL);
    uint32_t t = rt_record_builder_relation(b, &rel);
    rt_record_builder_insert(b, t, 1, one);
    rt_record_builder_ddl(b, &(rt_ddl_t){"ALTER TABLE", "pg_catalog, \"my app\"",
                                         "table \"my app\".t\nindex \"my app\".i",
                                         "ALTER TABLE t ADD COLUMN v text", 0});
    rt_record_builder_ddl(
        b, &(rt_ddl_t){"COMMENT", "", "table public.t", big, RT_DDL_NESTED | RT_DDL_PROTECTED});
    rt_record_builder_insert(b, t, 1, one);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST, 0, &data, &len), 0);
    void *frame = s_copy(data, len);
    assert_int_equal(rt_record_decode(s_dec, frame, len, &r), 0);
    assert_int_equal(r->nchanges, 4);
    assert_int_equal(r->changes[0].op, 'I');
    assert_int_equal(r->changes[1].op, 'L');
    assert_string_equal(r->changes[1].ddl->tag, "ALTER TABLE");
    assert_string_equal(r->changes[1].ddl->search_path, "pg_catalog, \"my app\"");
    assert_string_equal(r->changes[1].ddl->objects, "table \"my app\".t\nindex \"my app\".i");
    assert_string_equal(r->changes[1].ddl->command, "ALTER TABLE t ADD COLUMN v text");
    assert_int_equal(r->changes[1].ddl->flags, 0);
    assert_int_equal(r->changes[2].op, 'L');
    assert_string_equal(r->changes[2].ddl->command, big); /* longer than a name may be */
    assert_int_equal(r->changes[2].ddl->flags, RT_DDL_NESTED | RT_DDL_PROTECTED);
    assert_string_equal(r->changes[2].ddl->search_path, "");
    assert_int_equal(r->changes[3].op, 'I');
    free(frame);

    /* Unknown flags and missing fields are refused by the builder. */
    rt_record_builder_start(b, 21, 99, 0x3000, 5, NULL);
    rt_record_builder_ddl(b, &(rt_ddl_t){"ALTER TABLE", "", "", "ALTER TABLE t", 4});
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST, 0, &data, &len), RT_EINVAL);
    rt_record_builder_start(b, 21, 99, 0x3000, 5, NULL);
    rt_record_builder_ddl(b, &(rt_ddl_t){"ALTER TABLE", NULL, "", "ALTER TABLE t", 0});
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST, 0, &data, &len), RT_EINVAL);
    rt_record_builder_destroy(&b);

    /* Malformed DDL changes: wrong length, empty command, a command that is a str or
     * holds a NUL, flags past RT_DDL_FLAGS. */
    for (int f = 0; f < 5; f++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 11);
        msgpack_pack_str_with_body(&pk, "REC", 3);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, 9);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, RT_REC_FIRST | RT_REC_LAST);
        msgpack_pack_uint32(&pk, 0x1000);
        msgpack_pack_uint32(&pk, 0x1000);
        msgpack_pack_int64(&pk, 5);
        msgpack_pack_nil(&pk);
        msgpack_pack_array(&pk, 0);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, f == 0 ? 5 : 6);
        msgpack_pack_uint8(&pk, 'L');
        msgpack_pack_str_with_body(&pk, "ALTER TABLE", 11);
        msgpack_pack_uint8(&pk, f == 4 ? 4 : 0);
        msgpack_pack_bin_with_body(&pk, "", 1);
        msgpack_pack_bin_with_body(&pk, "", 1);
        if (f == 1)
            msgpack_pack_bin_with_body(&pk, "", 1);
        else if (f == 2)
            msgpack_pack_str_with_body(&pk, "ALTER TABLE t", 13);
        else if (f == 3)
            msgpack_pack_bin_with_body(&pk, "ALTER\0TABLE", 12);
        else if (f != 0)
            msgpack_pack_bin_with_body(&pk, "ALTER TABLE t", 14);
        frame = s_copy(sb.data, sb.size);
        if (rt_record_decode(s_dec, frame, sb.size, &r) != RT_EPROTO)
            fail_msg("DDL fault %d was not refused", f);
        free(frame);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_record_sequences(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    const rt_record_t *r;
    const void *data;
    size_t len;

    rt_record_builder_start(b, 12, 0, 0x2000, 77, NULL);
    rt_record_builder_sequence(b, "public", "kv_id_seq", INT64_MAX);
    rt_record_builder_sequence(b, "app schema", "down", INT64_MIN);
    assert_int_equal(rt_record_builder_nchanges(b), 2);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 0x2000, &data, &len),
                     0);
    void *frame = s_copy(data, len);
    assert_int_equal(rt_record_decode(s_dec, frame, len, &r), 0);
    assert_int_equal(r->seq, 12);
    assert_int_equal(r->nrels, 0);
    assert_int_equal(r->nchanges, 2);
    assert_int_equal(r->changes[0].op, 'Q');
    assert_string_equal(r->changes[0].seq_schema, "public");
    assert_string_equal(r->changes[0].seq_name, "kv_id_seq");
    assert_true(r->changes[0].seq_value == INT64_MAX);
    assert_string_equal(r->changes[1].seq_schema, "app schema");
    assert_string_equal(r->changes[1].seq_name, "down");
    assert_true(r->changes[1].seq_value == INT64_MIN);
    free(frame);

    /* A record of sequences holds nothing else and is a whole transaction. */
    rt_record_builder_start(b, 13, 0, 0, 0, NULL);
    rt_record_builder_relation(b, &(rt_relation_t){"public", "t", 'd', 0, NULL});
    rt_record_builder_sequence(b, "public", "s", 1);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 0, &data, &len),
                     RT_EINVAL);
    rt_record_builder_start(b, 13, 0, 0, 0, NULL);
    rt_record_builder_sequence(b, "public", "s", 1);
    rt_record_builder_truncate(b, 0, 0, NULL);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 0, &data, &len),
                     RT_EINVAL);
    rt_record_builder_start(b, 13, 0, 0, 0, NULL);
    rt_record_builder_sequence(b, "public", "s", 1);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST, 0, &data, &len), RT_EINVAL);
    rt_record_builder_start(b, 13, 0, 0, 0, NULL);
    rt_record_builder_sequence(b, NULL, "s", 1);
    assert_int_equal(rt_record_builder_finish(b, RT_REC_FIRST | RT_REC_LAST, 0, &data, &len),
                     RT_EINVAL);
    rt_record_builder_destroy(&b);

    for (int f = 0; f < Q_COUNT; f++) {
        msgpack_sbuffer sb;
        s_sequence_record(f, &sb);
        frame = s_copy(sb.data, sb.size);
        int rc = rt_record_decode(s_dec, frame, sb.size, &r);
        if (f == Q_NONE) {
            assert_int_equal(rc, 0);
            assert_string_equal(r->changes[0].seq_name, "t_id_seq");
            assert_true(r->changes[0].seq_value == -42);
        } else {
            if (rc != RT_EPROTO)
                fprintf(stderr, "sequence fault %d decoded with %d\n", f, rc);
            assert_int_equal(rc, RT_EPROTO);
        }
        free(frame);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- prevalidation and msgpack-c bombs */

static void test_bombs(void **state)
{
    (void)state;
    static const unsigned char b1[] = {0xdd, 0x10, 0x00, 0x00, 0x00};
    static const unsigned char b2[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char b3[] = {0xc6, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char b4[] = {0xc1};
    static const unsigned char b5[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char b6[] = {0xdb, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char b7[] = {0xc9, 0x00, 0x00, 0x00, 0x01};
    static const unsigned char b8[] = {0x92, 0xa3, 'R', 'E', 'C', 0xc1};
    static const unsigned char b9[] = {0x82, 0x01, 0x02, 0x03}; /* map missing a value */
    const struct {
        const unsigned char *p;
        size_t n;
    } bombs[] = {{b1, sizeof b1}, {b2, sizeof b2}, {b3, sizeof b3},
                 {b4, sizeof b4}, {b5, sizeof b5}, {b6, sizeof b6},
                 {b7, sizeof b7}, {b8, sizeof b8}, {b9, sizeof b9}};
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        void *p = s_copy(bombs[i].p, bombs[i].n);
        assert_int_equal(rt_wire_prevalidate(p, bombs[i].n), RT_EPROTO);
        assert_int_equal(s_decode_record(p, bombs[i].n), RT_EPROTO);
        assert_int_equal(s_decode_msg(p, bombs[i].n), RT_EPROTO);
        assert_int_equal(s_decode_status(p, bombs[i].n), RT_EPROTO);
        (void)rt_msg_peek_type(p, bombs[i].n);
        free(p);
    }

    /* 100 nested arrays around nil, and the limit itself */
    unsigned char deep[101];
    memset(deep, 0x91, 100);
    deep[100] = 0xc0;
    assert_int_equal(rt_wire_prevalidate(deep, sizeof deep), RT_EPROTO);
    assert_int_equal(s_decode_record(deep, sizeof deep), RT_EPROTO);
    assert_int_equal(s_decode_msg(deep, sizeof deep), RT_EPROTO);
    assert_int_equal(rt_wire_prevalidate(deep + 100 - 16, 17), 0);
    assert_int_equal(rt_wire_prevalidate(deep + 100 - 17, 18), RT_EPROTO);
    unsigned char deep_empty[17];
    memset(deep_empty, 0x91, 16);
    deep_empty[16] = 0x90; /* an empty 17th level */
    assert_int_equal(rt_wire_prevalidate(deep_empty + 1, 16), 0);
    assert_int_equal(rt_wire_prevalidate(deep_empty, 17), RT_EPROTO);

    /* empty, oversized, NULL */
    assert_int_equal(rt_wire_prevalidate(b1, 0), RT_EPROTO);
    assert_int_equal(rt_wire_prevalidate(NULL, 0), RT_EPROTO);
    /* Past RT_WIRE_MAX_FRAME only REC and COPY_DATA, past RT_WIRE_MAX_RECORD nothing
     * (not read: the length alone refuses it). */
    unsigned char *big = calloc((size_t)RT_WIRE_MAX_FRAME + 1, 1);
    assert_non_null(big);
    big[0] = 0x93;
    big[1] = 0xa2;
    memcpy(big + 2, "OK", 2);
    assert_int_equal(rt_wire_prevalidate(big, (size_t)RT_WIRE_MAX_FRAME + 1), RT_EPROTO);
    free(big);
    assert_int_equal(rt_wire_prevalidate(b1, (size_t)RT_WIRE_MAX_RECORD + 1), RT_EPROTO);

    /* every type that is well-formed passes prevalidation */
    static const unsigned char ok[] = {
        0xdc, 0x00, 0x11, 0x7f, 0xe0, 0xc0, 0xc2, 0xc3, 0xca, 0, 0, 0, 0,    0xcb, 0,   0,    0, 0,
        0,    0,    0,    0,    0xcf, 1,    2,    3,    4,    5, 6, 7, 8,    0xd3, 1,   2,    3, 4,
        5,    6,    7,    8,    0xd4, 1,    1,    0xd8, 1,    0, 0, 0, 0,    0,    0,   0,    0, 0,
        0,    0,    0,    0,    0,    0,    0,    0xc7, 2,    1, 0, 0, 0xd9, 1,    'a', 0xc5, 0, 1,
        0,    0x81, 0xa1, 'k',  0x90, 0xde, 0,    0,    0x80};
    assert_int_equal(rt_wire_prevalidate(ok, sizeof ok), 0);
    for (size_t n = 0; n < sizeof ok; n++)
        assert_int_equal(rt_wire_prevalidate(ok, n), RT_EPROTO);
}

/* Random byte flips of valid frames never crash; what decodes is consistent. */
static void test_fuzz_flips(void **state)
{
    (void)state;
    rt_record_builder_t *b = rt_record_builder_new();
    uint64_t x = 0x9E3779B97F4A7C15ull; /* xorshift64 state, fixed seed */
    size_t reclen;
    void *rec = s_full_record(b, "o", &reclen);
    rt_msg_t hello = {.type = RT_MSG_WELCOME,
                      .source = "src",
                      .endpoint = "tcp://h:1",
                      .first_seq = 3,
                      .head_seq = 900};
    void *msgf;
    size_t msglen;
    assert_int_equal(rt_msg_encode(&hello, &msgf, &msglen), 0);
    rt_status_sub_t subs[2] = {{.name = "a", .acked_seq = 1, .state = 0, .seen_ms_ago = 5},
                               {.name = "b", .acked_seq = 2, .state = 2, .seen_ms_ago = -1}};
    rt_status_t st = {.source = "s", .slot = "rt_s", .nsubs = 2, .subs = subs};
    void *stf;
    size_t stlen;
    assert_int_equal(rt_status_encode(&st, &stf, &stlen), 0);

    int decoded = 0;
    for (int iter = 0; iter < 30000; iter++) {
        int which = iter % 3;
        const void *src = which == 0 ? rec : which == 1 ? msgf : stf;
        size_t len = which == 0 ? reclen : which == 1 ? msglen : stlen;
        unsigned char *p = s_copy(src, len);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int nflips = 1 + (int)(x % 4);
        for (int k = 0; k < nflips; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % len);
            p[at] = (x >> 32) & 1 ? (unsigned char)(x >> 40)
                                  : (unsigned char)(p[at] ^ (1u << ((x >> 40) % 8)));
        }
        if (which == 0) {
            const rt_record_t *r;
            int rc = rt_record_decode(s_dec, p, len, &r);
            assert_true(rc == 0 || rc == RT_EPROTO);
            if (rc == 0) {
                decoded++;
                for (uint32_t i = 0; i < r->nchanges; i++) {
                    const rt_change_t *c = &r->changes[i];
                    if (c->op == 'T') {
                        for (uint32_t j = 0; j < c->ntrunc; j++)
                            assert_true(c->trunc_rels[j] < r->nrels);
                        continue;
                    }
                    assert_true(c->rel < r->nrels);
                    uint32_t ncols = r->rels[c->rel].ncols;
                    for (uint32_t j = 0; j < c->nold; j++)
                        if (c->old[j].kind == RT_VAL_TEXT)
                            assert_int_equal(strlen(c->old[j].data), c->old[j].len);
                    for (uint32_t j = 0; j < c->nnew; j++)
                        if (c->new_[j].kind == RT_VAL_TEXT)
                            assert_int_equal(strlen(c->new_[j].data), c->new_[j].len);
                    assert_true(c->nold == 0 || c->nold == ncols);
                    assert_true(c->nnew == 0 || c->nnew == ncols);
                }
                for (uint32_t i = 0; i < r->nrels; i++)
                    for (uint32_t j = 0; j < r->rels[i].ncols; j++)
                        (void)strlen(r->rels[i].cols[j].name);
            }
        } else if (which == 1) {
            int rc = s_decode_msg(p, len);
            assert_true(rc == 0 || rc == RT_EPROTO);
        } else {
            int rc = s_decode_status(p, len);
            assert_true(rc == 0 || rc == RT_EPROTO);
        }
        (void)rt_msg_peek_type(p, len);
        /* and a random prefix of the flipped frame */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t cut = (size_t)(x % len);
        unsigned char *q = s_copy(p, cut);
        int rc = rt_wire_prevalidate(q, cut);
        assert_true(rc == 0 || rc == RT_EPROTO);
        rc = s_decode_record(q, cut);
        assert_true(rc == 0 || rc == RT_EPROTO);
        free(q);
        free(p);
    }
    (void)decoded;
    free(rec);
    free(msgf);
    free(stf);
    rt_record_builder_destroy(&b);
}

/* ---- control messages */

static void s_assert_str_eq(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

static void test_msg_roundtrip(void **state)
{
    (void)state;
    const rt_msg_t msgs[] = {
        {.type = RT_MSG_HELLO, .name = "replica-1", .seq = 123456789012ull},
        {.type = RT_MSG_HELLO,
         .name = "replica-1",
         .seq = 77,
         .lsn = 0x16B3748ull,
         .flags = RT_HELLO_LSN},
        {.type = RT_MSG_WELCOME,
         .source = "main",
         .endpoint = "tcp://*:7471",
         .first_seq = 1,
         .head_seq = UINT64_MAX,
         .run_id = 0x0123456789abcdefull,
         .seq = 41},
        {.type = RT_MSG_WELCOME,
         .source = "main",
         .endpoint = "tcp://*:7471",
         .first_seq = 0,
         .head_seq = 0,
         .paused = true},
        {.type = RT_MSG_FETCH, .seq = 17, .count = 256},
        {.type = RT_MSG_FETCH, .seq = 17, .count = 256, .run_id = UINT64_MAX},
        /* an older version, for an older peer */
        {.type = RT_MSG_WELCOME,
         .version = 2,
         .source = "main",
         .endpoint = "tcp://*:7471",
         .first_seq = 3,
         .head_seq = 9,
         .run_id = 5},
        {.type = RT_MSG_HELLO, .version = 1, .name = "replica-1", .seq = 12},
        {.type = RT_MSG_FETCHED, .seq = 17, .last_seq = 0, .head_seq = 400, .run_id = 9},
        {.type = RT_MSG_ACK, .seq = 99, .state = RT_SUB_CATCHING_UP, .text = ""},
        {.type = RT_MSG_ACK, .seq = 0, .state = RT_SUB_OFFLINE, .text = ""},
        {.type = RT_MSG_ACK,
         .seq = 7,
         .state = RT_SUB_ERROR,
         .conflicts = UINT64_MAX,
         .commit_ts = INT64_MIN,
         .applied_at = INT64_MAX,
         .text = "conflict at seq 8"},
        {.type = RT_MSG_FORGET, .name = "replica-1", .flags = RT_FORGET_FORCE},
        {.type = RT_MSG_SKIP, .name = "replica-1", .seq = 4242},
        {.type = RT_MSG_REPLAY,
         .name = "replica-1",
         .seq = 10,
         .last_seq = 0,
         .commit_ts = -1000,
         .flags = RT_REPLAY_RESET | RT_REPLAY_SINCE},
        {.type = RT_MSG_HUGZ, .head_seq = 5, .run_id = UINT64_MAX},
        {.type = RT_MSG_LIVE, .head_seq = 4, .run_id = 77},
        {.type = RT_MSG_STREAM_ABORT, .run_id = 77, .xid = UINT32_MAX, .subxid = 745},
        {.type = RT_MSG_STREAM_COMMIT, .run_id = 77, .xid = 744, .count = 31, .first_seq = 9},
        {.type = RT_MSG_ERROR, .code = RT_ETRIMMED, .text = "records up to 9 were trimmed"},
        {.type = RT_MSG_ERROR, .code = INT64_MIN, .text = ""},
        {.type = RT_MSG_ERROR, .code = 7, .text = "positive"},
        {.type = RT_MSG_PING},
        {.type = RT_MSG_PONG, .source = "main", .head_seq = 77},
        {.type = RT_MSG_STATUS},
        {.type = RT_MSG_PAUSE, .name = "replica-1"},
        {.type = RT_MSG_RESUME, .name = "r\xc3\xa9plica"},
        {.type = RT_MSG_OK, .text = "paused replica-1"},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        const rt_msg_t *w = &msgs[i];
        void *frame;
        size_t len;
        rt_msg_t m;
        assert_int_equal(rt_msg_encode(w, &frame, &len), 0);
        assert_int_equal(rt_msg_peek_type(frame, len), w->type);
        assert_int_equal(rt_msg_decode(frame, len, &m), 0);
        assert_int_equal(m.type, w->type);
        s_assert_str_eq(m.name, w->name);
        s_assert_str_eq(m.source, w->source);
        s_assert_str_eq(m.endpoint, w->endpoint);
        s_assert_str_eq(m.text, w->text);
        assert_int_equal(m.code, w->code);
        assert_int_equal(m.state, w->state);
        assert_int_equal(m.seq, w->seq);
        assert_int_equal(m.last_seq, w->last_seq);
        assert_int_equal(m.first_seq, w->first_seq);
        assert_int_equal(m.head_seq, w->head_seq);
        assert_int_equal(m.run_id, w->run_id);
        assert_int_equal(m.count, w->count);
        assert_int_equal(m.paused, w->paused);
        assert_int_equal(m.conflicts, w->conflicts);
        assert_int_equal(m.commit_ts, w->commit_ts);
        assert_int_equal(m.applied_at, w->applied_at);
        assert_int_equal(m.lsn, w->lsn);
        assert_int_equal(m.xid, w->xid);
        assert_int_equal(m.subxid, w->subxid);
        assert_int_equal(m.version, w->version ? w->version : m.version);
        assert_int_equal(m.flags, w->flags);
        rt_msg_clear(&m);
        assert_null(m.name);
        rt_msg_clear(&m);
        /* not a record, not a status */
        const rt_record_t *r;
        assert_int_equal(rt_record_decode(s_dec, frame, len, &r), RT_EPROTO);
        assert_int_equal(s_decode_status(frame, len), RT_EPROTO);
        s_assert_truncations_fail(frame, len, s_decode_msg);
        unsigned char *longer = malloc(len + 1);
        memcpy(longer, frame, len);
        longer[len] = 0x00;
        assert_int_equal(s_decode_msg(longer, len + 1), RT_EPROTO);
        free(longer);
        free(frame);
    }
    /* a NULL string encodes as empty */
    rt_msg_t ok = {.type = RT_MSG_OK};
    void *frame;
    size_t len;
    rt_msg_t m;
    assert_int_equal(rt_msg_encode(&ok, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &m), 0);
    assert_string_equal(m.text, "");
    rt_msg_clear(&m);
    free(frame);
}

static void test_msg_encode_invalid(void **state)
{
    (void)state;
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    void *frame = (void *)1;
    size_t len;
    rt_msg_t m0 = {.type = RT_MSG_WELCOME, .version = 4, .source = "s", .endpoint = "e"};
    assert_int_equal(rt_msg_encode(&m0, &frame, &len), RT_EINVAL); /* no such version */
    assert_null(frame);
    rt_msg_t m1 = {.type = RT_MSG_OK, .text = big};
    assert_int_equal(rt_msg_encode(&m1, &frame, &len), RT_EINVAL);
    assert_null(frame);
    big[4096] = '\0';
    assert_int_equal(rt_msg_encode(&m1, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &m1), 0);
    assert_int_equal(strlen(m1.text), 4096);
    rt_msg_clear(&m1);
    free(frame);
    rt_msg_t m2 = {.type = RT_MSG_ACK, .state = RT_SUB_LAST_STATE + 1};
    assert_int_equal(rt_msg_encode(&m2, &frame, &len), RT_EINVAL);
    rt_msg_t m3 = {.type = RT_MSG_REC};
    assert_int_equal(rt_msg_encode(&m3, &frame, &len), RT_EINVAL);
    rt_msg_t m4 = {.type = RT_MSG_STATUS_REPLY};
    assert_int_equal(rt_msg_encode(&m4, &frame, &len), RT_EINVAL);
    rt_msg_t m5 = {.type = 999};
    assert_int_equal(rt_msg_encode(&m5, &frame, &len), RT_EINVAL);
}

/* Packs [tag, version, then the fields described by spec]:
 * s=str u=uint i=negative int n=nil b=bin S=str with a NUL L=str of 4097 bytes f=float
 * t=true F=false. */
static void s_pack_msg(msgpack_sbuffer *sb, const char *tag, int version, const char *spec)
{
    msgpack_packer pk;
    char longs[4097];
    memset(longs, 'z', sizeof longs);
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2 + strlen(spec));
    s_pack_str(&pk, tag);
    msgpack_pack_int64(&pk, version);
    for (const char *c = spec; *c; c++) {
        switch (*c) {
        case 's': s_pack_str(&pk, "x"); break;
        case 'u': msgpack_pack_uint64(&pk, 3); break;
        case 'i': msgpack_pack_int64(&pk, -3); break;
        case 'n': msgpack_pack_nil(&pk); break;
        case 'b': s_pack_bin(&pk, "x", 1); break;
        case 'S': msgpack_pack_str_with_body(&pk, "x\0y", 3); break;
        case 'L': msgpack_pack_str_with_body(&pk, longs, sizeof longs); break;
        case 'f': msgpack_pack_float(&pk, 1.0f); break;
        case '5': msgpack_pack_uint8(&pk, RT_SUB_LAST_STATE + 1); break;
        case 't': msgpack_pack_true(&pk); break;
        case 'F': msgpack_pack_false(&pk); break;
        }
    }
}

static void test_msg_malformed(void **state)
{
    (void)state;
    const struct {
        const char *tag;
        int version;
        const char *spec;
        int rc;
    } cases[] = {
        {"HELLO", 1, "su", 0},
        {"HELLO", 2, "suuu", 0},
        {"HELLO", 2, "su", RT_EPROTO},
        {"HELLO", 2, "suui", RT_EPROTO},
        {"HELLO", 3, "suuu", RT_EPROTO},
        {"HELLO", 0, "su", RT_EPROTO},
        {"HELLO", -1, "su", RT_EPROTO},
        {"HELLO", 1, "s", RT_EPROTO},
        {"HELLO", 1, "suu", RT_EPROTO},
        {"HELLO", 1, "us", RT_EPROTO},
        {"HELLO", 1, "bu", RT_EPROTO},
        {"HELLO", 1, "Su", RT_EPROTO},
        {"HELLO", 1, "Lu", RT_EPROTO},
        {"HELLO", 1, "si", RT_EPROTO},
        {"HELLO", 1, "sf", RT_EPROTO},
        {"HELLO", 1, "nu", RT_EPROTO},
        {"ACK", 1, "uuuiis", 0},
        {"ACK", 1, "u5uiis", RT_EPROTO},
        {"ACK", 1, "uiuiis", RT_EPROTO},
        {"ACK", 1, "uu", RT_EPROTO},
        {"ACK", 1, "uuiiis", RT_EPROTO},
        {"ACK", 1, "uuuiiu", RT_EPROTO},
        {"ACK", 1, "uuuiiL", RT_EPROTO},
        {"ACK", 1, "uuunis", RT_EPROTO},
        {"WELCOME", 1, "ssuut", 0},
        {"WELCOME", 2, "ssuutu", 0},
        {"WELCOME", 2, "ssuut", RT_EPROTO},
        {"WELCOME", 1, "ssuutu", RT_EPROTO},
        {"WELCOME", 3, "ssuutuu", 0},
        {"WELCOME", 3, "ssuutu", RT_EPROTO},
        {"WELCOME", 4, "ssuutuu", RT_EPROTO},
        {"HUGZ", 1, "u", 0},
        {"HUGZ", 2, "uu", 0},
        {"HUGZ", 2, "u", RT_EPROTO},
        {"HUGZ", 2, "ui", RT_EPROTO},
        {"FETCHED", 1, "uuu", 0},
        {"FETCHED", 2, "uuuu", 0},
        {"FETCHED", 2, "uuu", RT_EPROTO},
        {"LIVE", 1, "uu", 0},
        {"LIVE", 1, "u", RT_EPROTO},
        {"LIVE", 2, "uu", RT_EPROTO},
        {"WELCOME", 1, "ssuuF", 0},
        {"WELCOME", 1, "ssuuu", RT_EPROTO},
        {"WELCOME", 1, "ssuun", RT_EPROTO},
        {"FORGET", 1, "su", 0},
        {"FORGET", 1, "s", RT_EPROTO},
        {"FORGET", 1, "si", RT_EPROTO},
        {"REPLAY", 1, "suuiu", 0},
        {"REPLAY", 1, "suuuu", 0},
        {"REPLAY", 1, "suuii", RT_EPROTO},
        {"REPLAY", 1, "suuu", RT_EPROTO},
        {"ERROR", 1, "is", 0},
        {"ERROR", 1, "us", 0},
        {"ERROR", 1, "fs", RT_EPROTO},
        {"ERROR", 1, "in", RT_EPROTO},
        {"PING", 1, "", 0},
        {"PING", 1, "u", RT_EPROTO},
        {"PING", 2, "", RT_EPROTO},
        {"FETCH", 1, "uu", 0},
        {"FETCH", 1, "ui", RT_EPROTO},
        {"FETCH", 2, "uuu", 0},
        {"FETCH", 2, "uu", RT_EPROTO},
        {"WELCOME", 1, "ssuu", RT_EPROTO},
        {"WELCOME", 1, "ss", RT_EPROTO},
        {"NOPE", 1, "", RT_EPROTO},
        {"ping", 1, "", RT_EPROTO},
        {"STATUS_REPLY", 1, "", RT_EPROTO},
        {"REC", 1, "", RT_EPROTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer sb;
        rt_msg_t m;
        s_pack_msg(&sb, cases[i].tag, cases[i].version, cases[i].spec);
        void *frame = s_copy(sb.data, sb.size);
        int rc = rt_msg_decode(frame, sb.size, &m);
        if (rc != cases[i].rc)
            fprintf(stderr, "case %zu (%s %s) gave %d\n", i, cases[i].tag, cases[i].spec, rc);
        assert_int_equal(rc, cases[i].rc);
        if (rc != 0) {
            assert_int_equal(m.type, 0);
            assert_null(m.name);
        }
        rt_msg_clear(&m);
        free(frame);
        msgpack_sbuffer_destroy(&sb);
    }
    /* the whole frame must be an array */
    static const unsigned char not_array[] = {0xa4, 'P', 'I', 'N', 'G'};
    assert_int_equal(s_decode_msg(not_array, sizeof not_array), RT_EPROTO);
    assert_int_equal(rt_msg_peek_type(not_array, sizeof not_array), RT_MSG_UNKNOWN);
}

static void test_peek_type(void **state)
{
    (void)state;
    static const unsigned char hugz[] = {0x93, 0xa4, 'H', 'U', 'G', 'Z', 0x01, 0x05};
    static const unsigned char short_tag[] = {0x93, 0xa4, 'H', 'U'};
    static const unsigned char a16[] = {0xdc, 0x00, 0x02, 0xa4, 'P', 'I', 'N', 'G', 0x01};
    static const unsigned char str8[] = {0x92, 0xd9, 0x04, 'P', 'I', 'N', 'G', 0x01};
    static const unsigned char empty[] = {0x90};
    static const unsigned char status[] = {0x91, 0xac, 'S', 'T', 'A', 'T', 'U',
                                           'S',  '_',  'R', 'E', 'P', 'L', 'Y'};
    assert_int_equal(rt_msg_peek_type(hugz, sizeof hugz), RT_MSG_HUGZ);
    assert_int_equal(rt_msg_peek_type(short_tag, sizeof short_tag), RT_MSG_UNKNOWN);
    assert_int_equal(rt_msg_peek_type(a16, sizeof a16), RT_MSG_PING);
    assert_int_equal(rt_msg_peek_type(str8, sizeof str8), RT_MSG_PING);
    assert_int_equal(rt_msg_peek_type(empty, sizeof empty), RT_MSG_UNKNOWN);
    assert_int_equal(rt_msg_peek_type(status, sizeof status), RT_MSG_STATUS_REPLY);
    assert_int_equal(rt_msg_peek_type(NULL, 0), RT_MSG_UNKNOWN);
    assert_int_equal(rt_msg_peek_type(hugz, 1), RT_MSG_UNKNOWN);
    /* a 16-bit array whose count is zero is not ours */
    static const unsigned char a16z[] = {0xdc, 0x00, 0x00, 0xa4, 'P', 'I', 'N', 'G'};
    assert_int_equal(rt_msg_peek_type(a16z, sizeof a16z), RT_MSG_UNKNOWN);
}

static void test_sub_state_name(void **state)
{
    (void)state;
    assert_string_equal(rt_sub_state_name(RT_SUB_STREAMING), "streaming");
    assert_string_equal(rt_sub_state_name(RT_SUB_CATCHING_UP), "catching-up");
    assert_string_equal(rt_sub_state_name(RT_SUB_PAUSED), "paused");
    assert_string_equal(rt_sub_state_name(RT_SUB_ERROR), "error");
    assert_string_equal(rt_sub_state_name(RT_SUB_OFFLINE), "offline");
    assert_string_equal(rt_sub_state_name(RT_SUB_COPYING), "copying");
    assert_string_equal(rt_sub_state_name(RT_SUB_LAST_STATE + 1), "unknown");
    assert_string_equal(rt_sub_state_name(-1), "unknown");
}

/* ---- Initial copy messages */

static void test_sync_roundtrip(void **state)
{
    (void)state;
    rt_sync_column_t cols1[] = {{"id", "integer", 23}, {"v", "text", 25}};
    rt_sync_column_t cols2[] = {{"k", "mood", 16500}};
    rt_sync_table_t tables[] = {{"public", "t1", 'r', 8192, 100, 200, 2, cols1},
                                {"sales", "by month", 'p', 0, 0, 0, 1, cols2}};
    rt_msg_t m = {.type = RT_MSG_SYNC_READY,
                  .sync_id = 7,
                  .seq = 41,
                  .lsn = 0x16B374D48ULL,
                  .tables = tables,
                  .ntables = 2,
                  .text = "00000003-00000002-1"};
    void *frame;
    size_t len;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), 0);
    assert_int_equal(rt_msg_peek_type(frame, len), RT_MSG_SYNC_READY);
    rt_msg_t d;
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_int_equal(d.sync_id, 7);
    assert_int_equal(d.seq, 41);
    assert_int_equal(d.lsn, 0x16B374D48ULL);
    assert_string_equal(d.text, "00000003-00000002-1");
    assert_int_equal(d.ntables, 2);
    assert_string_equal(d.tables[1].schema, "sales");
    assert_string_equal(d.tables[1].table, "by month");
    assert_int_equal(d.tables[1].relkind, 'p');
    assert_int_equal(d.tables[0].bytes, 8192);
    assert_int_equal(d.tables[0].first_page, 100);
    assert_int_equal(d.tables[0].end_page, 200);
    assert_int_equal(d.tables[0].ncols, 2);
    assert_string_equal(d.tables[0].cols[1].name, "v");
    assert_string_equal(d.tables[0].cols[1].type, "text");
    assert_int_equal(d.tables[1].cols[0].typoid, 16500);
    rt_msg_clear(&d);
    /* Every truncation of the frame is refused. */
    for (size_t cut = 0; cut < len; cut++) {
        rt_msg_t x;
        void *part = s_copy(frame, cut);
        assert_int_not_equal(rt_msg_decode(part, cut, &x), 0);
        assert_null(x.tables);
        free(part);
    }
    free(frame);

    /* A table without columns, or of another kind, is neither encoded nor decoded. */
    rt_sync_table_t bad[] = {{"public", "t1", 'v', 0, 0, 0, 2, cols1}};
    m.tables = bad;
    m.ntables = 1;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), RT_EINVAL);
    bad[0].relkind = 'r';
    bad[0].ncols = 0;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), RT_EINVAL);
    /* A range that ends before it starts, or a range of a partitioned table. */
    bad[0].ncols = 2;
    bad[0].first_page = 10;
    bad[0].end_page = 10;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), RT_EINVAL);
    bad[0].end_page = 0;
    bad[0].relkind = 'p';
    assert_int_equal(rt_msg_encode(&m, &frame, &len), RT_EINVAL);

    unsigned char bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)i;
    rt_msg_t c = {
        .type = RT_MSG_COPY_DATA, .sync_id = 7, .table = 1, .data = bytes, .datalen = sizeof bytes};
    assert_int_equal(rt_msg_encode(&c, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_int_equal(d.type, RT_MSG_COPY_DATA);
    assert_int_equal(d.table, 1);
    assert_int_equal(d.datalen, sizeof bytes);
    assert_memory_equal(d.data, bytes, sizeof bytes);
    rt_msg_clear(&d);
    free(frame);

    rt_msg_t b = {.type = RT_MSG_STREAM,
                  .run_id = 9,
                  .head_seq = 40,
                  .xid = 731,
                  .subxid = 733,
                  .seq = 2,
                  .data = bytes,
                  .datalen = sizeof bytes};
    assert_int_equal(rt_msg_encode(&b, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_int_equal(d.type, RT_MSG_STREAM);
    assert_int_equal(d.run_id, 9);
    assert_int_equal(d.head_seq, 40);
    assert_int_equal(d.xid, 731);
    assert_int_equal(d.subxid, 733);
    assert_int_equal(d.seq, 2);
    assert_int_equal(d.datalen, sizeof bytes);
    assert_memory_equal(d.data, bytes, sizeof bytes);
    rt_msg_clear(&d);
    free(frame);

    rt_msg_t q = {.type = RT_MSG_COPY,
                  .name = "r1",
                  .sync_id = 7,
                  .table = 3,
                  .count = 8,
                  .flags = RT_COPY_BINARY};
    assert_int_equal(rt_msg_encode(&q, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_string_equal(d.name, "r1");
    assert_int_equal(d.count, 8);
    assert_int_equal(d.flags, RT_COPY_BINARY);
    rt_msg_clear(&d);
    free(frame);
}

/* SYNC_READY tables of the wrong shape are refused. */
static void test_sync_malformed(void **state)
{
    (void)state;
    for (int f = 0; f < 7; f++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 7);
        s_pack_str(&pk, "SYNC_READY");
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, 2);
        msgpack_pack_uint8(&pk, 3);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, f == 1 ? 6 : 7);
        s_pack_str(&pk, f == 2 ? "" : "public");
        s_pack_str(&pk, "t");
        s_pack_str(&pk, f == 3 ? "rv" : "r");
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint8(&pk, f == 6 ? 9 : 0);
        if (f != 1)
            msgpack_pack_uint8(&pk, f == 6 ? 9 : 0);
        if (f != 1) {
            msgpack_pack_array(&pk, f == 4 ? 0 : 1);
            if (f != 4) {
                msgpack_pack_array(&pk, f == 5 ? 2 : 3);
                s_pack_str(&pk, "id");
                s_pack_str(&pk, "integer");
                if (f != 5)
                    msgpack_pack_uint8(&pk, 23);
            }
        }
        s_pack_str(&pk, "snap");
        void *frame = s_copy(sb.data, sb.size);
        rt_msg_t m;
        int rc = rt_msg_decode(frame, sb.size, &m);
        if (rc != (f == 0 ? 0 : RT_EPROTO))
            fprintf(stderr, "sync case %d gave %d\n", f, rc);
        assert_int_equal(rc, f == 0 ? 0 : RT_EPROTO);
        if (rc != 0)
            assert_null(m.tables);
        rt_msg_clear(&m);
        free(frame);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* SCHEMA and SCHEMA_READY carry tables' names and definitions, quotes and all, and
 * SCHEMA_READY the support script; an entry of the wrong shape or with an empty name is
 * refused. */
static void test_schema_roundtrip(void **state)
{
    (void)state;
    rt_sync_ddl_t ddl[2] = {
        {.schema = "public",
         .table = "events",
         .pre = "CREATE TABLE public.events ();",
         .post = ""},
        {.schema = "app", .table = "Odd \"Name\"", .pre = "CREATE ...;\n", .post = "ALTER ...;"}};
    rt_msg_t m = {.type = RT_MSG_SCHEMA_READY,
                  .sync_id = 9,
                  .ddl = ddl,
                  .nddl = 2,
                  .text =
                      "--\n-- Name: mood; Type: TYPE\nCREATE TYPE public.mood AS ENUM ('a');\n"};
    void *frame;
    size_t len;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), 0);
    assert_int_equal(rt_msg_peek_type(frame, len), RT_MSG_SCHEMA_READY);
    rt_msg_t d;
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_int_equal(d.sync_id, 9);
    assert_string_equal(d.text, m.text);
    assert_int_equal(d.nddl, 2);
    assert_string_equal(d.ddl[1].table, "Odd \"Name\"");
    assert_string_equal(d.ddl[1].pre, "CREATE ...;\n");
    assert_string_equal(d.ddl[1].post, "ALTER ...;");
    assert_string_equal(d.ddl[0].post, "");
    rt_msg_clear(&d);
    free(frame);

    rt_msg_t q = {.type = RT_MSG_SCHEMA, .name = "r1", .sync_id = 9, .ddl = ddl, .nddl = 1};
    assert_int_equal(rt_msg_encode(&q, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_string_equal(d.name, "r1");
    assert_int_equal(d.nddl, 1);
    assert_string_equal(d.ddl[0].schema, "public");
    rt_msg_clear(&d);
    free(frame);

    /* No support script travels as an empty one. */
    m.text = NULL;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_string_equal(d.text, "");
    rt_msg_clear(&d);
    free(frame);

    ddl[0].table = "";
    assert_int_equal(rt_msg_encode(&m, &frame, &len), RT_EINVAL);

    /* Version 2: a definition is a text field of any length, not a str of 4096 bytes. */
    char *wide = malloc(20001);
    assert_non_null(wide);
    memset(wide, 'c', 20000);
    wide[20000] = '\0';
    ddl[0].table = "wide";
    ddl[0].pre = wide;
    assert_int_equal(rt_msg_encode(&m, &frame, &len), 0);
    assert_int_equal(rt_msg_decode(frame, len, &d), 0);
    assert_string_equal(d.ddl[0].pre, wide);
    rt_msg_clear(&d);
    free(frame);
    free(wide);

    /* 0 well-formed, 1 a short entry, 2 an empty table name, 3 version 1, 4 a str pre,
     * 5 version 2 (no support script), 6 a str support script. */
    for (int f = 0; f < 7; f++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, f == 5 ? 4 : 5);
        s_pack_str(&pk, "SCHEMA_READY");
        msgpack_pack_uint8(&pk, f == 3 ? 1 : f == 5 ? 2 : 3);
        msgpack_pack_uint8(&pk, 9);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, f == 1 ? 3 : 4);
        s_pack_str(&pk, "public");
        s_pack_str(&pk, f == 2 ? "" : "t");
        if (f == 4)
            s_pack_str(&pk, "pre");
        else
            msgpack_pack_bin_with_body(&pk, "pre", 4);
        if (f != 1)
            msgpack_pack_bin_with_body(&pk, "post", 5);
        if (f == 6)
            s_pack_str(&pk, "CREATE TYPE t;");
        else if (f != 5)
            msgpack_pack_bin_with_body(&pk, "CREATE TYPE t;", 15);
        void *copy = s_copy(sb.data, sb.size);
        int rc = rt_msg_decode(copy, sb.size, &d);
        assert_int_equal(rc, f == 0 ? 0 : RT_EPROTO);
        if (rc != 0)
            assert_null(d.ddl);
        rt_msg_clear(&d);
        free(copy);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- STATUS_REPLY */

static void test_status_roundtrip(void **state)
{
    (void)state;
    rt_status_sub_t subs[3] = {
        {.name = "replica-1",
         .acked_seq = 100,
         .state = RT_SUB_STREAMING,
         .seen_ms_ago = 12,
         .conflicts = 3,
         .commit_ts = 800000000000,
         .applied_at = 800000001000,
         .lag_bytes = 4096,
         .lag_ms = 1,
         .error = "",
         .copy = {3, 10, 123456, 1u << 30, 3u << 30, 9000}},
        {.name = "replica-2",
         .acked_seq = 0,
         .state = RT_SUB_OFFLINE,
         .seen_ms_ago = -1,
         .commit_ts = INT64_MIN,
         .applied_at = -5,
         .lag_ms = -1,
         .error = "conflict at seq 7: UPDATE of \"public\".\"t\" matched 0 rows"},
        {.name = "",
         .acked_seq = UINT64_MAX,
         .state = RT_SUB_PAUSED,
         .seen_ms_ago = INT64_MAX,
         .conflicts = UINT64_MAX,
         .lag_bytes = UINT64_MAX,
         .lag_ms = INT64_MAX}};
    memset(subs[2].error, 'e', RT_ERROR_TEXT_MAX);
    subs[2].error[RT_ERROR_TEXT_MAX] = '\0';
    memset(subs[2].name, 'n', 127);
    subs[2].name[127] = '\0';
    rt_status_t st = {.source = "main",
                      .slot = "rt_main",
                      .first_seq = 5,
                      .head_seq = 900,
                      .records = 896,
                      .outbox_bytes = 1u << 30,
                      .received_lsn = 0x1600000000ull,
                      .confirmed_lsn = 0x15FFFFFFFFull,
                      .captured_txns = 10,
                      .captured_rows = 1000000,
                      .nsubs = 3,
                      .subs = subs,
                      .capture_state = RT_CAPTURE_BLOCKED,
                      .oldest_ts = -7,
                      .head_ts = INT64_MAX,
                      .now_ts = 812345678901234,
                      .security = RT_SECURITY_CURVE,
                      .retained_wal_bytes = 5LL << 40,
                      .source_lag_bytes = -1,
                      .source_lag_ms = 1234,
                      .outbox_limit_bytes = 8LL << 20,
                      .upstream = "tcp://10.0.0.1:7470",
                      .upstream_head = 901};
    void *frame;
    size_t len;
    rt_status_t got;

    for (uint32_t nsubs = 0; nsubs <= 3; nsubs += 3) {
        st.nsubs = nsubs;
        assert_int_equal(rt_status_encode(&st, &frame, &len), 0);
        assert_int_equal(rt_msg_peek_type(frame, len), RT_MSG_STATUS_REPLY);
        assert_int_equal(rt_status_decode(frame, len, &got), 0);
        assert_string_equal(got.source, "main");
        assert_string_equal(got.slot, "rt_main");
        assert_int_equal(got.first_seq, 5);
        assert_int_equal(got.head_seq, 900);
        assert_int_equal(got.records, 896);
        assert_int_equal(got.outbox_bytes, 1u << 30);
        assert_int_equal(got.received_lsn, 0x1600000000ull);
        assert_int_equal(got.confirmed_lsn, 0x15FFFFFFFFull);
        assert_int_equal(got.captured_txns, 10);
        assert_int_equal(got.captured_rows, 1000000);
        assert_int_equal(got.capture_state, RT_CAPTURE_BLOCKED);
        assert_int_equal(got.oldest_ts, -7);
        assert_int_equal(got.head_ts, INT64_MAX);
        assert_int_equal(got.now_ts, 812345678901234);
        assert_int_equal(got.security, RT_SECURITY_CURVE);
        assert_int_equal(got.retained_wal_bytes, 5LL << 40);
        assert_int_equal(got.source_lag_bytes, -1);
        assert_int_equal(got.source_lag_ms, 1234);
        assert_int_equal(got.outbox_limit_bytes, 8LL << 20);
        assert_string_equal(got.upstream, "tcp://10.0.0.1:7470");
        assert_int_equal(got.upstream_head, 901);
        assert_int_equal(got.nsubs, nsubs);
        for (uint32_t i = 0; i < nsubs; i++) {
            assert_string_equal(got.subs[i].name, subs[i].name);
            assert_int_equal(got.subs[i].acked_seq, subs[i].acked_seq);
            assert_int_equal(got.subs[i].state, subs[i].state);
            assert_int_equal(got.subs[i].seen_ms_ago, subs[i].seen_ms_ago);
            assert_int_equal(got.subs[i].conflicts, subs[i].conflicts);
            assert_int_equal(got.subs[i].commit_ts, subs[i].commit_ts);
            assert_int_equal(got.subs[i].applied_at, subs[i].applied_at);
            assert_int_equal(got.subs[i].lag_bytes, subs[i].lag_bytes);
            assert_int_equal(got.subs[i].lag_ms, subs[i].lag_ms);
            assert_string_equal(got.subs[i].error, subs[i].error);
            assert_memory_equal(&got.subs[i].copy, &subs[i].copy, sizeof subs[i].copy);
        }
        if (nsubs == 0)
            assert_null(got.subs);
        rt_status_clear(&got);
        rt_status_clear(&got);
        assert_int_equal(s_decode_msg(frame, len), RT_EPROTO);
        s_assert_truncations_fail(frame, len, s_decode_status);
        free(frame);
    }

    /* a name filling its buffer cannot be sent */
    st.nsubs = 3;
    memset(subs[2].name, 'n', sizeof subs[2].name);
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    subs[2].name[127] = '\0';
    subs[1].state = 9;
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    subs[1].state = RT_SUB_ERROR;
    memset(subs[0].error, 'e', sizeof subs[0].error);
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    subs[0].error[0] = '\0';
    st.capture_state = 4;
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    st.capture_state = -1;
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    st.capture_state = RT_CAPTURE_NONE;
    st.security = 3;
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    st.security = RT_SECURITY_INSECURE;
    /* the figures: -1 is unknown, below is invalid */
    int64_t *figures[] = {&st.retained_wal_bytes, &st.source_lag_bytes, &st.source_lag_ms,
                          &st.outbox_limit_bytes};
    for (size_t i = 0; i < 4; i++) {
        int64_t was = *figures[i];
        *figures[i] = -2;
        assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
        *figures[i] = INT64_MIN;
        assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
        *figures[i] = was;
    }
    assert_int_equal(rt_status_encode(&st, &frame, &len), 0);
    free(frame);
    memset(st.upstream, 'u', sizeof st.upstream);
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
    st.upstream[0] = '\0';
    memset(st.slot, 's', sizeof st.slot);
    assert_int_equal(rt_status_encode(&st, &frame, &len), RT_EINVAL);
}

/* Received names that do not fit the fixed buffers are malformed; so are figures below -1
 * and a layout that does not match its version. Versions 1 (16 fields after the version:
 * the slot's figures and the outbox limit unknown) and 2 (20: no upstream) decode. */
static void test_status_malformed(void **state)
{
    (void)state;
    /* f: 0 valid, 1 the other version's number, 2 source of 128 bytes, 3 name of 128 bytes,
     * 4 state 6, 5 seen nil, 6 capture state 4, 7 error text of 256 bytes, 8 a sub of 4
     * fields (old layout), 9 lag_bytes negative, 10 top-level array one field short, 11
     * security 3, 12 copy progress of 5 fields, 13 more tables done than there are, 14 a
     * figure of -2 (version 2), 15 a figure that is nil (version 2), 16 one field more, 17 an
     * upstream of 256 bytes (version 3), 18 a negative upstream head (version 3) */
    for (int v = 1; v <= 3; v++) {
        for (int f = 0; f < 19; f++) {
            if ((v == 1 && (f == 14 || f == 15)) || (v < 3 && f >= 17))
                continue; /* version 1 has no figures, versions 1 and 2 no upstream */
            msgpack_sbuffer sb;
            msgpack_packer pk;
            char name[256];
            memset(name, 'q', sizeof name);
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, (v == 1 ? 18 : v == 2 ? 22 : 24) - (f == 10) + (f == 16));
            s_pack_str(&pk, "STATUS_REPLY");
            msgpack_pack_uint8(&pk, (uint8_t)(f == 1 ? (v == 1 ? 2 : v - 1) : v));
            msgpack_pack_str_with_body(&pk, name, f == 2 ? 128 : 127);
            s_pack_str(&pk, "slot");
            for (int i = 0; i < 8; i++)
                msgpack_pack_uint8(&pk, (uint8_t)i);
            msgpack_pack_uint8(&pk, f == 6 ? 4 : 1);
            msgpack_pack_int64(&pk, -1);
            msgpack_pack_int64(&pk, 5);
            if (f != 10)
                msgpack_pack_int64(&pk, 6);
            msgpack_pack_uint8(&pk, f == 11 ? 3 : 2);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_array(&pk, f == 8 ? 4 : 11);
            msgpack_pack_str_with_body(&pk, name, f == 3 ? 128 : 127);
            msgpack_pack_uint8(&pk, 1);
            msgpack_pack_uint8(&pk, f == 4 ? RT_SUB_LAST_STATE + 1 : 1);
            if (f == 5)
                msgpack_pack_nil(&pk);
            else
                msgpack_pack_int8(&pk, -1);
            if (f != 8) {
                msgpack_pack_uint8(&pk, 2);
                msgpack_pack_int64(&pk, 700);
                msgpack_pack_int64(&pk, 701);
                if (f == 9)
                    msgpack_pack_int8(&pk, -1);
                else
                    msgpack_pack_uint8(&pk, 9);
                msgpack_pack_int64(&pk, -1);
                msgpack_pack_str_with_body(&pk, name, f == 7 ? 256 : 255);
                msgpack_pack_array(&pk, f == 12 ? 5 : 6);
                msgpack_pack_uint8(&pk, f == 13 ? 4 : 2);
                for (int i = 0; i < (f == 12 ? 4 : 5); i++)
                    msgpack_pack_uint8(&pk, 3);
            }
            if (v >= 2) {
                msgpack_pack_int64(&pk, 3LL << 30);
                msgpack_pack_int64(&pk, f == 14 ? -2 : -1);
                if (f == 15)
                    msgpack_pack_nil(&pk);
                else
                    msgpack_pack_int64(&pk, 250);
                msgpack_pack_int64(&pk, 0);
            }
            if (v == 3) {
                msgpack_pack_str_with_body(&pk, name, f == 17 ? 256 : 255);
                if (f == 18)
                    msgpack_pack_int8(&pk, -1);
                else
                    msgpack_pack_uint16(&pk, 4000);
            }
            if (f == 16)
                msgpack_pack_int64(&pk, 0);
            void *frame = s_copy(sb.data, sb.size);
            if (s_decode_status(frame, sb.size) != (f == 0 ? 0 : RT_EPROTO))
                fprintf(stderr, "status version %d case %d\n", v, f);
            assert_int_equal(s_decode_status(frame, sb.size), f == 0 ? 0 : RT_EPROTO);
            if (f == 0) {
                rt_status_t st;
                assert_int_equal(rt_status_decode(frame, sb.size, &st), 0);
                assert_int_equal(st.nsubs, 1);
                assert_int_equal(st.subs[0].lag_bytes, 9);
                assert_int_equal(st.security, RT_SECURITY_INSECURE);
                assert_int_equal(st.retained_wal_bytes, v == 1 ? -1 : 3LL << 30);
                assert_int_equal(st.source_lag_bytes, -1);
                assert_int_equal(st.source_lag_ms, v == 1 ? -1 : 250);
                assert_int_equal(st.outbox_limit_bytes, v == 1 ? -1 : 0);
                assert_int_equal(strlen(st.upstream), v == 3 ? 255 : 0);
                assert_int_equal(st.upstream_head, v == 3 ? 4000 : 0);
                rt_status_clear(&st);
                s_assert_truncations_fail(frame, sb.size, s_decode_status);
            }
            free(frame);
            msgpack_sbuffer_destroy(&sb);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_record_big_value),
        cmocka_unit_test(test_record_multi_flags),
        cmocka_unit_test(test_record_golden),
        cmocka_unit_test(test_builder_invalid),
        cmocka_unit_test(test_builder_reuse),
        cmocka_unit_test(test_record_malformed_fields),
        cmocka_unit_test(test_record_truncations),
        cmocka_unit_test(test_record_sequences),
        cmocka_unit_test(test_record_ddl),
        cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_fuzz_flips),
        cmocka_unit_test(test_msg_roundtrip),
        cmocka_unit_test(test_msg_encode_invalid),
        cmocka_unit_test(test_msg_malformed),
        cmocka_unit_test(test_peek_type),
        cmocka_unit_test(test_sub_state_name),
        cmocka_unit_test(test_sync_roundtrip),
        cmocka_unit_test(test_sync_malformed),
        cmocka_unit_test(test_schema_roundtrip),
        cmocka_unit_test(test_status_roundtrip),
        cmocka_unit_test(test_status_malformed),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
