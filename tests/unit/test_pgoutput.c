/* tests/unit/test_pgoutput.c - pgoutput decoder against captured PostgreSQL 15 messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

/* One captured message, in its own exactly sized allocation. */
typedef struct {
    char *buf;  /* message bytes */
    size_t len; /* number of bytes */
} s_fixture_msg_t;

static s_fixture_msg_t *s_msgs; /* every message of workload.hex, in stream order */
static size_t s_nmsgs;          /* number of messages */
static char s_dir[4096];        /* $RT_FIXTURES/pgoutput */

static int s_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static char *s_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&data, &size);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(f);
    fclose(mem);
    *len = size;
    return data;
}

static int s_load_fixtures(void **state)
{
    (void)state;
    const char *root = getenv("RT_FIXTURES");
    if (!root) {
        fprintf(stderr, "RT_FIXTURES is not set\n");
        return -1;
    }
    snprintf(s_dir, sizeof(s_dir), "%s/pgoutput", root);
    char path[4200];
    snprintf(path, sizeof(path), "%s/workload.hex", s_dir);
    size_t size;
    char *text = s_read_file(path, &size);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    size_t cap = 0;
    char *line = text;
    while (line < text + size) {
        char *eol = memchr(line, '\n', (size_t)(text + size - line));
        size_t hexlen = eol ? (size_t)(eol - line) : (size_t)(text + size - line);
        if (hexlen > 0) {
            if (hexlen % 2) {
                fprintf(stderr, "%s: odd hex line %zu\n", path, s_nmsgs + 1);
                free(text);
                return -1;
            }
            if (s_nmsgs == cap) {
                cap = cap ? cap * 2 : 128;
                s_msgs = realloc(s_msgs, cap * sizeof(*s_msgs));
            }
            s_fixture_msg_t *m = &s_msgs[s_nmsgs++];
            m->len = hexlen / 2;
            m->buf = malloc(m->len);
            for (size_t i = 0; i < m->len; i++) {
                int hi = s_hexval(line[2 * i]), lo = s_hexval(line[2 * i + 1]);
                if (hi < 0 || lo < 0) {
                    fprintf(stderr, "%s: bad hex on line %zu\n", path, s_nmsgs);
                    free(text);
                    return -1;
                }
                m->buf[i] = (char)(hi << 4 | lo);
            }
        }
        line += hexlen + 1;
    }
    free(text);
    return s_nmsgs > 0 ? 0 : -1;
}

static int s_free_fixtures(void **state)
{
    (void)state;
    for (size_t i = 0; i < s_nmsgs; i++)
        free(s_msgs[i].buf);
    free(s_msgs);
    s_msgs = NULL;
    s_nmsgs = 0;
    return 0;
}

/* Decodes message i of the fixture, failing the test if it does not decode. */
static void s_decode_fixture(rt_pgoutput_t *dec, size_t i, rt_pgo_msg_t *msg)
{
    int rc = rt_pgoutput_decode(dec, s_msgs[i].buf, s_msgs[i].len, msg);
    if (rc)
        fail_msg("fixture message %zu (type %c, %zu bytes): %s", i + 1, s_msgs[i].buf[0],
                 s_msgs[i].len, rt_strerror(rc));
}

/* Decodes a copy of bytes in an exactly sized allocation, so that reads past the end are
 * caught by the sanitizers. */
static rt_pgo_msg_t s_last; /* the last message s_decode_copy decoded (its pointers into
                             * the copy are gone) */

static int s_decode_copy(rt_pgoutput_t *dec, const char *bytes, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, bytes, len);
    rt_pgo_msg_t msg;
    int rc = rt_pgoutput_decode(dec, copy, len, &msg);
    if (rc == RT_OK) {
        /* A message that decodes must also print. */
        FILE *null = fopen("/dev/null", "w");
        assert_non_null(null);
        rt_pgo_msg_print(&msg, null);
        fclose(null);
    } else {
        assert_int_equal(msg.type, 0);
    }
    s_last = msg;
    free(copy);
    return rc;
}

/* --- golden output ------------------------------------------------------------------- */

static void test_golden(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    assert_non_null(dec);
    char *out = NULL;
    size_t outlen = 0;
    FILE *mem = open_memstream(&out, &outlen);
    assert_non_null(mem);
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        rt_pgo_msg_print(&msg, mem);
        fputc('\n', mem);
    }
    fclose(mem);
    rt_pgoutput_destroy(&dec);
    assert_null(dec);
    rt_pgoutput_destroy(&dec); /* idempotent */

    char path[4200];
    snprintf(path, sizeof(path), "%s/workload.golden", s_dir);
    const char *regen = getenv("RT_REGEN");
    if (regen && strcmp(regen, "1") == 0) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(out, 1, outlen, f), outlen);
        assert_int_equal(fclose(f), 0);
        fprintf(stderr, "regenerated %s\n", path);
    }

    size_t goldlen;
    char *gold = s_read_file(path, &goldlen);
    if (!gold)
        fail_msg("cannot read %s (regenerate with RT_REGEN=1)", path);
    /* Compare line by line to report the first difference. */
    const char *a = out, *b = gold;
    size_t lineno = 1;
    while (a < out + outlen && b < gold + goldlen) {
        const char *ea = memchr(a, '\n', (size_t)(out + outlen - a));
        const char *eb = memchr(b, '\n', (size_t)(gold + goldlen - b));
        size_t la = ea ? (size_t)(ea - a) : (size_t)(out + outlen - a);
        size_t lb = eb ? (size_t)(eb - b) : (size_t)(gold + goldlen - b);
        if (la != lb || memcmp(a, b, la) != 0)
            fail_msg("golden line %zu differs:\n  got:  %.*s\n  want: %.*s", lineno, (int)la, a,
                     (int)lb, b);
        a += la + 1;
        b += lb + 1;
        lineno++;
    }
    assert_int_equal(outlen, goldlen);
    assert_memory_equal(out, gold, outlen);
    free(out);
    free(gold);
}

/* --- targeted assertions on the captured workload ------------------------------------ */

/* Returns the relid of the first Relation message for relname, or 0. */
static uint32_t s_relid_of(rt_pgoutput_t *dec, const char *relname)
{
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        if (msg.type == 'R' && strcmp(msg.u.relation.relname, relname) == 0)
            return msg.u.relation.relid;
    }
    fail_msg("no Relation message for %s", relname);
    return 0;
}

static bool s_col_is(const rt_pgo_col_t *col, const char *text)
{
    return col->kind == 't' && col->len == strlen(text) && memcmp(col->data, text, col->len) == 0;
}

static void test_transactions(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    bool open = false;
    rt_lsn_t final_lsn = 0, last_end = 0;
    int64_t begin_ts = 0;
    int ntx = 0, nchanges = 0;
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        switch (msg.type) {
        case 'B':
            assert_false(open);
            open = true;
            final_lsn = msg.u.begin.final_lsn;
            begin_ts = msg.u.begin.commit_ts;
            assert_true(final_lsn > last_end);
            assert_true(msg.u.begin.xid > 0);
            assert_true(begin_ts > 0);
            nchanges = 0;
            break;
        case 'C':
            assert_true(open);
            open = false;
            assert_int_equal(msg.u.commit.flags, 0);
            assert_true(msg.u.commit.commit_lsn == final_lsn);
            assert_true(msg.u.commit.end_lsn > msg.u.commit.commit_lsn);
            assert_true(msg.u.commit.commit_ts == begin_ts);
            assert_true(nchanges > 0); /* PG15 skips empty transactions */
            last_end = msg.u.commit.end_lsn;
            ntx++;
            break;
        case 'M':
            /* Transactional messages come inside B..C, the others outside. */
            assert_int_equal(msg.u.message.flags == 1, open);
            if (open)
                nchanges++;
            break;
        case 'I':
        case 'U':
        case 'D':
        case 'T':
            assert_true(open);
            nchanges++;
            break;
        default: assert_true(open); break;
        }
    }
    assert_false(open);
    assert_true(ntx >= 20);
    rt_pgoutput_destroy(&dec);
}

static void test_relations(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    int kv_seen = 0, checked = 0;
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        if (msg.type != 'R')
            continue;
        const char *rel = msg.u.relation.relname;
        const rt_pgo_attr_t *at = msg.u.relation.attrs;
        if (strcmp(rel, "kv") == 0) {
            assert_string_equal(msg.u.relation.nspname, "public");
            assert_int_equal(msg.u.relation.replident, 'd');
            assert_string_equal(at[0].name, "id");
            assert_int_equal(at[0].flags, 1);
            assert_int_equal(at[0].typoid, 23);
            assert_int_equal(at[0].typmod, -1);
            assert_string_equal(at[1].name, "v");
            assert_int_equal(at[1].flags, 0);
            assert_int_equal(at[1].typoid, 25);
            assert_string_equal(at[2].name, "n");
            assert_int_equal(at[2].flags, 0);
            /* Sent again after ALTER TABLE ADD COLUMN, with the new column. */
            if (msg.u.relation.natts == 4) {
                assert_string_equal(at[3].name, "extra");
                assert_int_equal(at[3].flags, 0);
                kv_seen |= 2;
            } else {
                assert_int_equal(msg.u.relation.natts, 3);
                kv_seen |= 1;
            }
        } else if (strcmp(rel, "nopk") == 0) {
            /* FULL: every column is part of the identity. */
            assert_int_equal(msg.u.relation.replident, 'f');
            assert_int_equal(msg.u.relation.natts, 2);
            assert_int_equal(at[0].flags, 1);
            assert_int_equal(at[1].flags, 1);
            checked++;
        } else if (strcmp(rel, "byidx") == 0) {
            assert_int_equal(msg.u.relation.replident, 'i');
            assert_int_equal(msg.u.relation.natts, 3);
            assert_int_equal(at[0].flags, 0);
            assert_string_equal(at[1].name, "code");
            assert_int_equal(at[1].flags, 1);
            assert_int_equal(at[2].flags, 0);
            checked++;
        } else if (strcmp(rel, "logonly") == 0) {
            assert_int_equal(msg.u.relation.replident, 'n');
            assert_int_equal(at[0].flags, 0);
            checked++;
        } else if (strcmp(rel, "we;ird name") == 0) {
            assert_string_equal(msg.u.relation.nspname, "Mixed Case");
            assert_int_equal(msg.u.relation.natts, 2);
            assert_string_equal(at[1].name, "Col \"q\"");
            checked++;
        } else if (strcmp(rel, "alltypes") == 0) {
            assert_int_equal(msg.u.relation.natts, 16);
            assert_int_equal(at[0].typoid, 20);    /* int8 */
            assert_int_equal(at[1].typoid, 21);    /* int2 */
            assert_int_equal(at[6].typoid, 17);    /* bytea */
            assert_int_equal(at[8].typoid, 3802);  /* jsonb */
            assert_int_equal(at[12].typoid, 1007); /* int4[] */
            assert_int_equal(at[13].typoid, 1009); /* text[] */
            assert_true(at[14].typoid >= 16384);   /* the enum */
            assert_true(at[15].typoid >= 16384);   /* the domain */
            checked++;
        }
    }
    assert_int_equal(kv_seen, 3);
    assert_int_equal(checked, 5);
    rt_pgoutput_destroy(&dec);
}

static void test_types(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    uint32_t all = s_relid_of(dec, "alltypes");
    uint32_t y_mood = 0, y_pos = 0;
    bool relation_seen = false;
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        if (msg.type == 'R' && msg.u.relation.relid == all && !relation_seen) {
            /* Type messages come before the first Relation message that uses them. */
            assert_int_equal(msg.u.relation.attrs[14].typoid, y_mood);
            assert_int_equal(msg.u.relation.attrs[15].typoid, y_pos);
            relation_seen = true;
        }
        if (msg.type != 'Y')
            continue;
        assert_true(msg.u.type.typoid >= 16384);
        if (strcmp(msg.u.type.typname, "mood") == 0) {
            assert_string_equal(msg.u.type.nspname, "public");
            y_mood = msg.u.type.typoid;
        } else {
            /* A domain is described by its own OID and its base type's name. */
            assert_string_equal(msg.u.type.typname, "int4");
            assert_string_equal(msg.u.type.nspname, ""); /* pg_catalog */
            y_pos = msg.u.type.typoid;
        }
    }
    assert_true(relation_seen);
    assert_int_not_equal(y_mood, 0);
    assert_int_not_equal(y_pos, 0);
    rt_pgoutput_destroy(&dec);
}

static void test_changes(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    uint32_t kv = s_relid_of(dec, "kv"), big = s_relid_of(dec, "big");
    uint32_t nopk = s_relid_of(dec, "nopk"), byidx = s_relid_of(dec, "byidx");
    uint32_t all = s_relid_of(dec, "alltypes");
    int seen_toast = 0, seen_key = 0, seen_full_upd = 0, seen_full_del = 0, seen_idx_key = 0;
    int seen_nulls = 0, seen_plain_upd = 0, seen_kv_del = 0, seen_big_ins = 0;
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        if (msg.type == 'I' && msg.u.insert.relid == big) {
            const rt_pgo_tuple_t *t = &msg.u.insert.newtup;
            assert_int_equal(t->ncols, 3);
            assert_int_equal(t->cols[1].kind, 't');
            assert_int_equal(t->cols[1].len, 300 * 32);
            seen_big_ins++;
        } else if (msg.type == 'I' && msg.u.insert.relid == all) {
            const rt_pgo_tuple_t *t = &msg.u.insert.newtup;
            assert_int_equal(t->ncols, 16);
            if (s_col_is(&t->cols[0], "2")) {
                for (int c = 1; c < 16; c++)
                    assert_int_equal(t->cols[c].kind, 'n');
                seen_nulls++;
            } else {
                assert_true(s_col_is(&t->cols[1], "-32768"));
                assert_true(s_col_is(&t->cols[3], "-9223372036854775808"));
                assert_true(s_col_is(&t->cols[6], "\\x00ff10"));
                assert_true(s_col_is(&t->cols[7], "t"));
                assert_true(s_col_is(&t->cols[12], "{1,NULL,3}"));
                assert_true(s_col_is(&t->cols[14], "happy"));
                assert_true(s_col_is(&t->cols[15], "7"));
            }
        } else if (msg.type == 'I' && msg.u.insert.relid == kv &&
                   s_col_is(&msg.u.insert.newtup.cols[0], "2")) {
            assert_int_equal(msg.u.insert.newtup.cols[2].kind, 'n');
            seen_nulls++;
        } else if (msg.type == 'U' && msg.u.update.relid == big) {
            /* The TOASTed doc was not changed and is not sent. */
            assert_int_equal(msg.u.update.old_kind, 0);
            assert_int_equal(msg.u.update.oldtup.ncols, 0);
            assert_int_equal(msg.u.update.newtup.ncols, 3);
            assert_true(s_col_is(&msg.u.update.newtup.cols[0], "1"));
            assert_int_equal(msg.u.update.newtup.cols[1].kind, 'u');
            assert_null(msg.u.update.newtup.cols[1].data);
            assert_true(s_col_is(&msg.u.update.newtup.cols[2], "1"));
            seen_toast++;
        } else if (msg.type == 'U' && msg.u.update.relid == kv &&
                   s_col_is(&msg.u.update.newtup.cols[0], "3")) {
            /* The key changed: the old key is sent, the other columns as nulls. */
            assert_int_equal(msg.u.update.old_kind, 'K');
            assert_int_equal(msg.u.update.oldtup.ncols, 3);
            assert_true(s_col_is(&msg.u.update.oldtup.cols[0], "2"));
            assert_int_equal(msg.u.update.oldtup.cols[1].kind, 'n');
            assert_int_equal(msg.u.update.oldtup.cols[2].kind, 'n');
            assert_true(s_col_is(&msg.u.update.newtup.cols[1], "two"));
            seen_key++;
        } else if (msg.type == 'U' && msg.u.update.relid == kv &&
                   s_col_is(&msg.u.update.newtup.cols[1], "uno")) {
            assert_int_equal(msg.u.update.old_kind, 0);
            seen_plain_upd++;
        } else if (msg.type == 'U' && msg.u.update.relid == nopk) {
            assert_int_equal(msg.u.update.old_kind, 'O');
            assert_true(s_col_is(&msg.u.update.oldtup.cols[0], "1"));
            assert_true(s_col_is(&msg.u.update.oldtup.cols[1], "dup"));
            assert_true(s_col_is(&msg.u.update.newtup.cols[1], "dup2"));
            seen_full_upd++;
        } else if (msg.type == 'D' && msg.u.del.relid == nopk) {
            assert_int_equal(msg.u.del.old_kind, 'O');
            assert_int_equal(msg.u.del.oldtup.ncols, 2);
            assert_true(s_col_is(&msg.u.del.oldtup.cols[1], "dup2"));
            seen_full_del++;
        } else if (msg.type == 'D' && msg.u.del.relid == kv) {
            assert_int_equal(msg.u.del.old_kind, 'K');
            assert_true(s_col_is(&msg.u.del.oldtup.cols[0], "1"));
            assert_int_equal(msg.u.del.oldtup.cols[1].kind, 'n');
            seen_kv_del++;
        } else if (msg.type == 'U' && msg.u.update.relid == byidx && msg.u.update.old_kind) {
            assert_int_equal(msg.u.update.old_kind, 'K');
            assert_int_equal(msg.u.update.oldtup.cols[0].kind, 'n');
            assert_true(s_col_is(&msg.u.update.oldtup.cols[1], "A"));
            assert_true(s_col_is(&msg.u.update.newtup.cols[1], "B"));
            seen_idx_key++;
        }
    }
    assert_int_equal(seen_big_ins, 1);
    assert_int_equal(seen_toast, 1);
    assert_int_equal(seen_key, 1);
    assert_int_equal(seen_plain_upd, 1);
    assert_int_equal(seen_full_upd, 2);
    assert_int_equal(seen_full_del, 2);
    assert_int_equal(seen_kv_del, 1);
    assert_int_equal(seen_idx_key, 1);
    assert_int_equal(seen_nulls, 2);
    rt_pgoutput_destroy(&dec);
}

static void test_truncate_origin_messages(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    uint32_t parent = s_relid_of(dec, "parent"), child = s_relid_of(dec, "child");
    int seen_t = 0, seen_o = 0, seen_mt = 0, seen_mn = 0;
    char prev = 0;
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
        if (msg.type == 'T') {
            assert_int_equal(msg.u.truncate.flags, 3); /* CASCADE | RESTART IDENTITY */
            assert_int_equal(msg.u.truncate.nrels, 2);
            assert_int_equal(msg.u.truncate.relids[0], parent);
            assert_int_equal(msg.u.truncate.relids[1], child);
            seen_t++;
        } else if (msg.type == 'O') {
            assert_int_equal(prev, 'B');
            assert_string_equal(msg.u.origin.name, "rt_other");
            assert_true(msg.u.origin.lsn == 0xABCDEF);
            seen_o++;
        } else if (msg.type == 'M') {
            assert_string_equal(msg.u.message.prefix, "rt");
            assert_true(msg.u.message.lsn > 0);
            if (msg.u.message.flags == 1) {
                assert_int_equal(msg.u.message.len, 5);
                assert_memory_equal(msg.u.message.content, "hello", 5);
                seen_mt++;
            } else {
                assert_int_equal(msg.u.message.flags, 0);
                assert_int_equal(msg.u.message.len, 6);
                assert_memory_equal(msg.u.message.content, "\x00\x01\x02\x7f\x80\xff", 6);
                seen_mn++;
            }
        }
        prev = msg.type;
    }
    assert_int_equal(seen_t, 1);
    assert_int_equal(seen_o, 1);
    assert_int_equal(seen_mt, 1);
    assert_int_equal(seen_mn, 1);
    rt_pgoutput_destroy(&dec);
}

/* --- malformed input ------------------------------------------------------------------ */

static void test_prefixes(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    for (size_t i = 0; i < s_nmsgs; i++) {
        for (size_t k = 0; k < s_msgs[i].len; k++) {
            int rc = s_decode_copy(dec, s_msgs[i].buf, k);
            if (rc != RT_EPROTO)
                fail_msg("message %zu cut to %zu of %zu bytes: rc %d", i + 1, k, s_msgs[i].len, rc);
        }
    }
    rt_pgoutput_destroy(&dec);
}

static void test_trailing_byte(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    const char extra[] = {0, 'n', 'N', '\xff'};
    for (size_t i = 0; i < s_nmsgs; i++) {
        char *longer = malloc(s_msgs[i].len + 1);
        memcpy(longer, s_msgs[i].buf, s_msgs[i].len);
        for (size_t e = 0; e < sizeof(extra); e++) {
            longer[s_msgs[i].len] = extra[e];
            int rc = s_decode_copy(dec, longer, s_msgs[i].len + 1);
            if (rc != RT_EPROTO)
                fail_msg("message %zu with trailing 0x%02x: rc %d", i + 1, (unsigned char)extra[e],
                         rc);
        }
        free(longer);
    }
    rt_pgoutput_destroy(&dec);
}

static uint64_t s_rand_state = 0x9E3779B97F4A7C15ull;

static uint64_t s_rand(void)
{
    /* xorshift64*: deterministic across runs and platforms. */
    s_rand_state ^= s_rand_state >> 12;
    s_rand_state ^= s_rand_state << 25;
    s_rand_state ^= s_rand_state >> 27;
    return s_rand_state * 0x2545F4914F6CDD1Dull;
}

static void test_corruption(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    size_t ok = 0, bad = 0;
    for (size_t i = 0; i < s_nmsgs; i++) {
        char *copy = malloc(s_msgs[i].len);
        for (int v = 0; v < 20; v++) {
            memcpy(copy, s_msgs[i].buf, s_msgs[i].len);
            int flips = 1 + (int)(s_rand() % 4);
            for (int f = 0; f < flips; f++) {
                /* Half of the flips hit the first 16 bytes, where the counts and tags are. */
                size_t span = (s_rand() & 1) && s_msgs[i].len > 16 ? 16 : s_msgs[i].len;
                size_t pos = (size_t)(s_rand() % span);
                copy[pos] ^= (char)(1 + s_rand() % 255);
            }
            int rc = s_decode_copy(dec, copy, s_msgs[i].len);
            if (rc == RT_OK)
                ok++;
            else if (rc == RT_EPROTO)
                bad++;
            else
                fail_msg("message %zu variant %d: rc %d", i + 1, v, rc);
        }
        free(copy);
    }
    /* Both outcomes must occur, or the corruption does not test anything. */
    assert_true(ok > 0);
    assert_true(bad > 0);
    rt_pgoutput_destroy(&dec);
}

/* Decodes a hand-made message given as a string literal of explicit length. */
#define S_DECODE(dec, lit) s_decode_copy((dec), (lit), sizeof(lit) - 1)

static void test_hostile(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    rt_pgo_msg_t msg;

    /* Empty input. */
    assert_int_equal(rt_pgoutput_decode(dec, NULL, 0, &msg), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, ""), RT_EPROTO);
    /* Unknown type bytes. */
    assert_int_equal(S_DECODE(dec, "Z"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "\0"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "i\0\0\0\1N\0\0"), RT_EPROTO);

    /* A well-formed insert, to show the variants below fail for the right reason. */
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\2t\0\0\0\2hin"), RT_OK);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\0"), RT_OK);
    /* Negative length (0xffffffff) and lengths beyond the buffer in a 't' column. */
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\1t\xff\xff\xff\xff"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\1t\xff\xff\xff\xffhi"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\1t\x80\0\0\0hi"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\1t\0\0\0\3hi"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\1b\x7f\xff\xff\xffhi"), RT_EPROTO);
    /* ncols 0x7fff with 3 bytes left, a negative ncols, an unknown column tag. */
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\x7f\xffnnn"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\xff\xff"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\x80\0"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1N\0\1x"), RT_EPROTO);
    /* Insert without 'N', update with an old tuple and no 'N', delete without 'K'/'O'. */
    assert_int_equal(S_DECODE(dec, "I\0\0\0\1K\0\0"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "U\0\0\0\1K\0\1n"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "U\0\0\0\1K\0\1nK\0\1n"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "U\0\0\0\1K\0\1nN\0\1u"), RT_OK);
    assert_int_equal(S_DECODE(dec, "D\0\0\0\1N\0\1n"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "D\0\0\0\1O\0\1n"), RT_OK);

    /* Strings without a NUL. */
    assert_int_equal(S_DECODE(dec, "O\0\0\0\0\0\0\0\1rt_other"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "O\0\0\0\0\0\0\0\1rt_other\0"), RT_OK);
    assert_int_equal(S_DECODE(dec, "Y\0\0\x40\0public\0mood"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "R\0\0\x40\0public"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "M\1\0\0\0\0\0\0\0\1rt"), RT_EPROTO);
    /* A relation: negative natts, natts beyond the buffer, bad replident or attr flags. */
    assert_int_equal(S_DECODE(dec, "R\0\0\x40\0\0t\0d\0\1\1id\0\0\0\0\x17\xff\xff\xff\xff"), RT_OK);
    assert_int_equal(S_DECODE(dec, "R\0\0\x40\0\0t\0d\xff\xff"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "R\0\0\x40\0\0t\0d\x7f\xff\1id\0\0\0\0\x17\xff\xff\xff\xff"),
                     RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "R\0\0\x40\0\0t\0x\0\1\1id\0\0\0\0\x17\xff\xff\xff\xff"),
                     RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "R\0\0\x40\0\0t\0d\0\1\2id\0\0\0\0\x17\xff\xff\xff\xff"),
                     RT_EPROTO);
    /* A truncate: negative nrels, nrels beyond the buffer, unknown flags. */
    assert_int_equal(S_DECODE(dec, "T\0\0\0\1\3\0\0\x40\0"), RT_OK);
    assert_int_equal(S_DECODE(dec, "T\xff\xff\xff\xff\3"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "T\x7f\xff\xff\xff\3\0\0\x40\0"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "T\0\0\0\1\4\0\0\x40\0"), RT_EPROTO);
    /* A message: negative length, length beyond the buffer, unknown flags. */
    assert_int_equal(S_DECODE(dec, "M\1\0\0\0\0\0\0\0\1rt\0\0\0\0\2hi"), RT_OK);
    assert_int_equal(S_DECODE(dec, "M\1\0\0\0\0\0\0\0\1rt\0\xff\xff\xff\xffhi"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "M\1\0\0\0\0\0\0\0\1rt\0\0\0\0\3hi"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "M\2\0\0\0\0\0\0\0\1rt\0\0\0\0\2hi"), RT_EPROTO);
    /* Commit flags are always 0 in protocol 1. */
    assert_int_equal(S_DECODE(dec, "C\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3"), RT_OK);
    assert_int_equal(S_DECODE(dec, "C\1\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3"),
                     RT_EPROTO);

    /* Stream blocks (protocol 2): c and A only outside a block, E only inside one, no
     * nesting; inside a block changes carry an xid. */
    assert_int_equal(S_DECODE(dec, "E"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "S\0\0\0\x10\2"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "S\0\0\0\x10"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "S\0\0\0\x10\1"), RT_OK);
    assert_true(rt_pgoutput_in_stream(dec));
    assert_int_equal(S_DECODE(dec, "S\0\0\0\x10\0"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "B\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\x10"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "A\0\0\0\x10\0\0\0\x10"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\x40\0N\0\0"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "I\0\0\0\x11\0\0\x40\0N\0\0"), RT_OK);
    assert_int_equal(S_DECODE(dec, "T\0\0\0\x11\0\0\0\1\3\0\0\x40\0"), RT_OK);
    assert_true(rt_pgoutput_in_stream(dec));
    assert_int_equal(S_DECODE(dec, "E!"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "E"), RT_OK);
    assert_false(rt_pgoutput_in_stream(dec));
    assert_int_equal(S_DECODE(dec, "c\0\0\0\x10\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3"),
                     RT_OK);
    assert_int_equal(S_DECODE(dec, "c\0\0\0\x10\1\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3"),
                     RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "c\0\0\0\x10\0\0\0\0\0\0\0\0\1"), RT_EPROTO);
    assert_int_equal(S_DECODE(dec, "A\0\0\0\x10\0\0\0\x11"), RT_OK);
    assert_int_equal(S_DECODE(dec, "A\0\0\0\x10\0\0\0"), RT_EPROTO);
    /* Two-phase (protocol 3) messages. */
    assert_int_equal(
        S_DECODE(dec, "b\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3\0\0\0\x10g\0"), RT_EPROTO);
    assert_int_equal(
        S_DECODE(dec, "P\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3\0\0\0\x10g"), RT_EPROTO);
    assert_int_equal(
        S_DECODE(dec, "K\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3\0\0\0\x10g"), RT_EPROTO);
    assert_int_equal(
        S_DECODE(dec, "r\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3\0\0\0\x10g"), RT_EPROTO);
    /* A change with an xid prefix outside a stream block: the extra 4 bytes leave 'N'
     * out of place. */
    assert_int_equal(S_DECODE(dec, "I\0\0\0\x10\0\0\x40\0N\0\0"), RT_EPROTO);
    rt_pgoutput_destroy(&dec);
}

static void test_handmade_fields(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    rt_pgo_msg_t msg;
    static const char ins[] = "I\0\0\x40\x01N\0\4t\0\0\0\3a\0bb\0\0\0\2\x01\x02nu";
    assert_int_equal(rt_pgoutput_decode(dec, ins, sizeof(ins) - 1, &msg), RT_OK);
    assert_int_equal(msg.type, 'I');
    assert_int_equal(msg.u.insert.relid, 0x4001);
    assert_int_equal(msg.u.insert.newtup.ncols, 4);
    assert_int_equal(msg.u.insert.newtup.cols[0].kind, 't');
    assert_int_equal(msg.u.insert.newtup.cols[0].len, 3);
    assert_ptr_equal(msg.u.insert.newtup.cols[0].data, ins + 13);
    assert_int_equal(msg.u.insert.newtup.cols[1].kind, 'b');
    assert_int_equal(msg.u.insert.newtup.cols[1].len, 2);
    assert_int_equal(msg.u.insert.newtup.cols[2].kind, 'n');
    assert_int_equal(msg.u.insert.newtup.cols[3].kind, 'u');

    char *out = NULL;
    size_t outlen = 0;
    FILE *mem = open_memstream(&out, &outlen);
    rt_pgo_msg_print(&msg, mem);
    fclose(mem);
    assert_string_equal(out, "I relid=16385 new=[t:a\\x00b b:2 n u]");
    free(out);

    static const char beg[] = "B\0\0\0\x16\xb3\x74\xd8\x48\xff\xff\xff\xff\xff\xff\xff\xfe"
                              "\x80\0\0\1";
    assert_int_equal(rt_pgoutput_decode(dec, beg, sizeof(beg) - 1, &msg), RT_OK);
    assert_true(msg.u.begin.final_lsn == 0x16B374D848ull);
    assert_true(msg.u.begin.commit_ts == -2);
    assert_int_equal(msg.u.begin.xid, 0x80000001u);
    out = NULL;
    mem = open_memstream(&out, &outlen);
    rt_pgo_msg_print(&msg, mem);
    fclose(mem);
    assert_string_equal(out, "B final_lsn=16/B374D848 commit_ts=-2 xid=2147483649");
    free(out);

    /* A long value is cut at 40 bytes. */
    char upd[128] = "U\0\0\0\1N\0\1t\0\0\0\x32";
    memset(upd + 13, 'x', 50);
    assert_int_equal(rt_pgoutput_decode(dec, upd, 63, &msg), RT_OK);
    out = NULL;
    mem = open_memstream(&out, &outlen);
    rt_pgo_msg_print(&msg, mem);
    fclose(mem);
    assert_string_equal(out,
                        "U relid=1 new=[t:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...(50 bytes)]");
    free(out);
    rt_pgoutput_destroy(&dec);
}

/* Once the scratch arrays have grown for the fixture set, decoding it again allocates
 * nothing and reuses the same arrays. */
static void test_stream_fields(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    assert_int_equal(S_DECODE(dec, "S\0\0\2\xda\1"), RT_OK);
    assert_int_equal(s_last.type, 'S');
    assert_int_equal(s_last.u.stream_start.xid, 730);
    assert_true(s_last.u.stream_start.first);
    assert_int_equal(S_DECODE(dec, "I\0\0\2\xdb\0\0\x40\1N\0\1t\0\0\0\2hi"), RT_OK);
    assert_int_equal(s_last.type, 'I');
    assert_int_equal(s_last.xid, 731);
    assert_int_equal(s_last.u.insert.relid, 0x4001);
    assert_int_equal(s_last.u.insert.newtup.cols[0].len, 2);
    assert_int_equal(S_DECODE(dec, "E"), RT_OK);
    assert_int_equal(S_DECODE(dec, "A\0\0\2\xda\0\0\2\xdb"), RT_OK);
    assert_int_equal(s_last.u.stream_abort.xid, 730);
    assert_int_equal(s_last.u.stream_abort.subxid, 731);
    assert_int_equal(S_DECODE(dec, "c\0\0\2\xda\0\0\0\0\0\0\0\0\x10\0\0\0\0\0\0\0\x20"
                                   "\0\0\0\0\0\0\0\x30"),
                     RT_OK);
    assert_int_equal(s_last.type, 'c');
    assert_int_equal(s_last.xid, 0);
    assert_int_equal(s_last.u.stream_commit.xid, 730);
    assert_int_equal(s_last.u.stream_commit.commit_lsn, 0x10);
    assert_int_equal(s_last.u.stream_commit.end_lsn, 0x20);
    assert_int_equal(s_last.u.stream_commit.commit_ts, 0x30);

    char *out = NULL;
    size_t outlen = 0;
    FILE *mem = open_memstream(&out, &outlen);
    rt_pgo_msg_print(&s_last, mem);
    fclose(mem);
    assert_string_equal(out, "c xid=730 flags=0 commit_lsn=0/10 end_lsn=0/20 commit_ts=48");
    free(out);
    rt_pgoutput_destroy(&dec);
}

static void test_no_growth(void **state)
{
    (void)state;
    rt_pgoutput_t *dec = rt_pgoutput_new();
    /* The array seen first after warm-up for attrs, old columns, new columns, relids. */
    const void *seen[4] = {NULL, NULL, NULL, NULL};
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < s_nmsgs; i++) {
            rt_pgo_msg_t msg;
            s_decode_fixture(dec, i, &msg);
            const void *used[4] = {NULL, NULL, NULL, NULL};
            switch (msg.type) {
            case 'R': used[0] = msg.u.relation.attrs; break;
            case 'I': used[2] = msg.u.insert.newtup.cols; break;
            case 'U':
                used[1] = msg.u.update.old_kind ? msg.u.update.oldtup.cols : NULL;
                used[2] = msg.u.update.newtup.cols;
                break;
            case 'D': used[1] = msg.u.del.oldtup.cols; break;
            case 'T': used[3] = msg.u.truncate.relids; break;
            default: break;
            }
            if (pass == 0)
                continue;
            for (int k = 0; k < 4; k++) {
                if (!used[k])
                    continue;
                if (!seen[k])
                    seen[k] = used[k];
                assert_ptr_equal(used[k], seen[k]);
            }
        }
    }
    for (int k = 0; k < 4; k++)
        assert_non_null(seen[k]);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 before = mallinfo2();
    for (size_t i = 0; i < s_nmsgs; i++) {
        rt_pgo_msg_t msg;
        s_decode_fixture(dec, i, &msg);
    }
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(after.uordblks, before.uordblks);
#endif
    rt_pgoutput_destroy(&dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),          cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_relations),       cmocka_unit_test(test_types),
        cmocka_unit_test(test_changes),         cmocka_unit_test(test_truncate_origin_messages),
        cmocka_unit_test(test_prefixes),        cmocka_unit_test(test_trailing_byte),
        cmocka_unit_test(test_corruption),      cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_handmade_fields), cmocka_unit_test(test_stream_fields),
        cmocka_unit_test(test_no_growth),
    };
    return cmocka_run_group_tests(tests, s_load_fixtures, s_free_fixtures);
}
