/* tests/unit/test_outbox.c - the LMDB outbox: append, read, reopen, trim, growth, limits,
 * and a put written on another thread (begin, write, end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "outbox.h"
#include "unit_tmp.h"

#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

typedef struct {
    char dir[512]; /* fresh outbox directory of this test */
} s_fixture_t;

static int s_setup(void **state)
{
    s_fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    if (rt_unit_mkdtemp(fx->dir, sizeof fx->dir, "outbox") != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *fx = *state;
    rt_unit_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* The outbox lives in a subdirectory the outbox must create itself. */
static const char *s_dir(void **state)
{
    static char path[600];
    s_fixture_t *fx = *state;
    snprintf(path, sizeof path, "%s/ob", fx->dir);
    return path;
}

static rt_outbox_t *s_open(void **state, uint64_t map_size, uint64_t max_bytes)
{
    rt_outbox_opts_t opts = {.map_size = map_size, .max_bytes = max_bytes};
    rt_outbox_t *ob = rt_outbox_open(s_dir(state), &opts);
    assert_non_null(ob);
    return ob;
}

static uint64_t s_file_size(void **state)
{
    char path[700];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir(state));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* Record contents: a function of seq and a salt, so every byte read can be checked. */
static size_t s_len(uint64_t seq)
{
    return 20 + (size_t)(seq * 37 % 300);
}

static void s_pattern(unsigned char *buf, size_t len, uint64_t seq, unsigned salt)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seq * 131 + i * 7 + salt * 61);
}

static rt_outbox_pos_t s_pos(uint64_t head)
{
    rt_outbox_pos_t pos = {.head_seq = head,
                           .last_commit_lsn = head * 100 + 0x1000000000ull,
                           .last_end_lsn = head * 100 + 0x1000000008ull};
    return pos;
}

/* Appends n records (len bytes each, or s_len(seq) when len is 0) with the given
 * head_seq; returns the put's result. */
static int s_try_append(rt_outbox_t *ob, size_t n, size_t len, unsigned salt, uint64_t head)
{
    uint64_t next = rt_outbox_next_seq(ob);
    rt_outbox_rec_t *recs = calloc(n ? n : 1, sizeof *recs);
    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        size_t l = len ? len : s_len(next + i);
        unsigned char *buf = malloc(l);
        assert_non_null(buf);
        s_pattern(buf, l, next + i, salt);
        recs[i].data = buf;
        recs[i].len = l;
    }
    rt_outbox_pos_t pos = s_pos(head);
    int rc = rt_outbox_put(ob, recs, n, &pos);
    for (size_t i = 0; i < n; i++)
        free((void *)recs[i].data);
    free(recs);
    return rc;
}

static void s_append(rt_outbox_t *ob, size_t n, size_t len, unsigned salt, uint64_t head)
{
    uint64_t next = rt_outbox_next_seq(ob);
    assert_int_equal(s_try_append(ob, n, len, salt, head), 0);
    assert_int_equal(rt_outbox_next_seq(ob), next + n);
    assert_int_equal(rt_outbox_position(ob).head_seq, head);
}

/* Checks every visited record against s_pattern, in dense order. */
typedef struct {
    size_t len;        /* expected length, or 0 for s_len(seq) */
    unsigned salt;     /* expected salt, unless overridden below */
    uint64_t alt_from; /* seqs >= alt_from (if non-zero) have alt_salt */
    unsigned alt_salt;
    uint64_t first;    /* first seq visited */
    uint64_t last;     /* last seq visited */
    size_t count;      /* records visited */
    size_t bytes;      /* bytes visited */
    size_t bad;        /* records out of order or with wrong contents */
    size_t stop_after; /* return 99 after this many records (0: never) */
    rt_outbox_t *ob;   /* when set, try writes from inside the callback */
    int inner_put_rc;  /* result of that put */
    int inner_stat_rc; /* result of that stat */
} s_check_t;

static int s_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_check_t *c = arg;
    if (c->count == 0)
        c->first = seq;
    else if (seq != c->last + 1)
        c->bad++;
    c->last = seq;
    c->count++;
    c->bytes += len;
    size_t want = c->len ? c->len : s_len(seq);
    unsigned salt = c->alt_from && seq >= c->alt_from ? c->alt_salt : c->salt;
    unsigned char *buf = malloc(want ? want : 1);
    s_pattern(buf, want, seq, salt);
    if (len != want || memcmp(buf, data, want) != 0)
        c->bad++;
    free(buf);
    if (c->ob) {
        rt_outbox_pos_t pos = rt_outbox_position(c->ob);
        c->inner_put_rc = rt_outbox_put(c->ob, NULL, 0, &pos);
        rt_outbox_stat_t st;
        c->inner_stat_rc = rt_outbox_stat(c->ob, &st);
    }
    if (c->stop_after && c->count >= c->stop_after)
        return 99;
    return 0;
}

static s_check_t s_read_all(rt_outbox_t *ob, uint64_t from, unsigned salt, size_t len)
{
    s_check_t c = {.salt = salt, .len = len};
    assert_int_equal(rt_outbox_read(ob, from, 0, 0, s_visit, &c), 0);
    assert_int_equal(c.bad, 0);
    return c;
}

static void test_append_read(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    struct stat dst;
    assert_int_equal(stat(s_dir(state), &dst), 0);
    assert_int_equal(dst.st_mode & 0777, 0700);
    assert_int_equal(rt_outbox_next_seq(ob), 1);
    assert_int_equal(rt_outbox_first_seq(ob), 1);
    assert_int_equal(rt_outbox_position(ob).head_seq, 0);

    s_check_t c = {.salt = 1};
    assert_int_equal(rt_outbox_read(ob, 1, 0, 0, s_visit, &c), 0);
    assert_int_equal(c.count, 0);

    s_append(ob, 10, 0, 1, 10);
    s_append(ob, 1, 0, 1, 11);
    s_append(ob, 39, 0, 1, 50);
    assert_int_equal(rt_outbox_position(ob).last_end_lsn, s_pos(50).last_end_lsn);
    assert_int_equal(rt_outbox_position(ob).last_commit_lsn, s_pos(50).last_commit_lsn);

    c = s_read_all(ob, 1, 1, 0);
    assert_int_equal(c.count, 50);
    assert_int_equal(c.first, 1);
    assert_int_equal(c.last, 50);
    c = s_read_all(ob, 0, 1, 0); /* seqs start at 1 */
    assert_int_equal(c.count, 50);
    c = s_read_all(ob, 37, 1, 0);
    assert_int_equal(c.count, 14);
    assert_int_equal(c.first, 37);
    c = s_read_all(ob, 50, 1, 0);
    assert_int_equal(c.count, 1);
    c = s_read_all(ob, 51, 1, 0);
    assert_int_equal(c.count, 0);

    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 50);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.head_seq, 50);
    assert_true(st.used_bytes > 0);
    assert_true(st.map_bytes >= 1024ull * MIB);

    /* A head above the appended seqs, or going back, is refused and writes nothing. */
    assert_int_equal(s_try_append(ob, 2, 0, 1, 53), RT_EINVAL);
    assert_int_equal(s_try_append(ob, 0, 0, 1, 49), RT_EINVAL);
    assert_int_equal(rt_outbox_next_seq(ob), 51);
    assert_int_equal(rt_outbox_position(ob).head_seq, 50);
    rt_outbox_destroy(&ob);
    assert_null(ob);
    rt_outbox_destroy(&ob);
}

static void test_read_limits(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    s_append(ob, 20, 100, 2, 20);

    s_check_t c = {.salt = 2, .len = 100};
    assert_int_equal(rt_outbox_read(ob, 1, 3, 0, s_visit, &c), 0);
    assert_int_equal(c.count, 3);
    assert_int_equal(c.last, 3);

    c = (s_check_t){.salt = 2, .len = 100};
    assert_int_equal(rt_outbox_read(ob, 5, 0, 250, s_visit, &c), 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.first, 5);
    assert_int_equal(c.last, 6);

    c = (s_check_t){.salt = 2, .len = 100};
    assert_int_equal(rt_outbox_read(ob, 5, 0, 300, s_visit, &c), 0);
    assert_int_equal(c.count, 3);

    /* At least one record, however small max_bytes is. */
    c = (s_check_t){.salt = 2, .len = 100};
    assert_int_equal(rt_outbox_read(ob, 7, 10, 10, s_visit, &c), 0);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.first, 7);

    /* Both limits: the tighter wins. */
    c = (s_check_t){.salt = 2, .len = 100};
    assert_int_equal(rt_outbox_read(ob, 1, 4, 1000, s_visit, &c), 0);
    assert_int_equal(c.count, 4);
    c = (s_check_t){.salt = 2, .len = 100};
    assert_int_equal(rt_outbox_read(ob, 1, 40, 1000, s_visit, &c), 0);
    assert_int_equal(c.count, 10);

    /* The callback's non-zero result stops the walk and is returned. */
    c = (s_check_t){.salt = 2, .len = 100, .stop_after = 4};
    assert_int_equal(rt_outbox_read(ob, 1, 0, 0, s_visit, &c), 99);
    assert_int_equal(c.count, 4);
    assert_int_equal(c.bad, 0);

    /* Calls back into the outbox from the callback are refused, nothing is written. */
    c = (s_check_t){.salt = 2, .len = 100, .ob = ob, .stop_after = 1};
    assert_int_equal(rt_outbox_read(ob, 1, 0, 0, s_visit, &c), 99);
    assert_int_equal(c.inner_put_rc, RT_EINVAL);
    assert_int_equal(c.inner_stat_rc, RT_EINVAL);
    /* And the outbox works normally afterwards. */
    c = s_read_all(ob, 1, 2, 100);
    assert_int_equal(c.count, 20);
    rt_outbox_destroy(&ob);
}

static void test_open_chunks_readable(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    /* One complete transaction (1..3) and two chunks of an open one (4, 5): stored, so
     * they are served before the transaction's last chunk is. */
    s_append(ob, 3, 0, 3, 3);
    s_append(ob, 2, 0, 3, 3);
    assert_int_equal(rt_outbox_next_seq(ob), 6);

    s_check_t c = s_read_all(ob, 1, 3, 0);
    assert_int_equal(c.count, 5);
    assert_int_equal(c.last, 5);
    c = s_read_all(ob, 4, 3, 0);
    assert_int_equal(c.count, 2);
    c = s_read_all(ob, 6, 3, 0);
    assert_int_equal(c.count, 0);

    /* Trimming never passes head_seq. */
    size_t deleted = 99;
    assert_int_equal(rt_outbox_trim(ob, 5, 0, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(rt_outbox_first_seq(ob), 4);
    c = s_read_all(ob, 4, 3, 0);
    assert_int_equal(c.count, 2);

    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.head_seq, 3);

    /* The last chunk closes it. */
    s_append(ob, 2, 0, 3, 7);
    c = s_read_all(ob, 4, 3, 0);
    assert_int_equal(c.count, 4);
    assert_int_equal(c.first, 4);
    assert_int_equal(c.last, 7);
    rt_outbox_destroy(&ob);
}

static void test_reopen_keeps(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    s_append(ob, 25, 0, 4, 25);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 26);
    assert_int_equal(rt_outbox_first_seq(ob), 1);
    rt_outbox_pos_t pos = rt_outbox_position(ob);
    assert_int_equal(pos.head_seq, 25);
    assert_int_equal(pos.last_commit_lsn, s_pos(25).last_commit_lsn);
    assert_int_equal(pos.last_end_lsn, s_pos(25).last_end_lsn);
    s_check_t c = s_read_all(ob, 1, 4, 0);
    assert_int_equal(c.count, 25);

    s_append(ob, 5, 0, 4, 30);
    c = s_read_all(ob, 1, 4, 0);
    assert_int_equal(c.count, 30);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 31);
    c = s_read_all(ob, 1, 4, 0);
    assert_int_equal(c.count, 30);
    rt_outbox_destroy(&ob);
}

/* A new outbox may number its records from a later seq (a relay's mirrors its
 * publisher's); one that holds or held records may not. */
static void test_start_at(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_start_at(ob, 0), RT_EINVAL);
    assert_int_equal(rt_outbox_start_at(ob, 1000), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 1000);
    assert_int_equal(rt_outbox_first_seq(ob), 1000);
    assert_int_equal(rt_outbox_position(ob).head_seq, 999);
    assert_int_equal(rt_outbox_start_at(ob, 5), RT_EINVAL);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 1000);
    assert_int_equal(rt_outbox_first_seq(ob), 1000);
    assert_int_equal(rt_outbox_read(ob, 999, 0, 0, s_visit, &(s_check_t){0}), RT_ETRIMMED);
    s_append(ob, 10, 0, 4, 1009);
    s_check_t c = s_read_all(ob, 1000, 4, 0);
    assert_int_equal(c.count, 10);
    assert_int_equal(c.first, 1000);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_first_seq(ob), 1000);
    assert_int_equal(rt_outbox_next_seq(ob), 1010);
    assert_int_equal(rt_outbox_start_at(ob, 2000), RT_EINVAL);
    rt_outbox_destroy(&ob);
}

static void test_reopen_keeps_open_chunks(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    s_append(ob, 10, 0, 5, 10);
    s_append(ob, 4, 0, 5, 10); /* 11..14: chunks of a transaction not complete yet */
    rt_outbox_destroy(&ob);

    /* Kept and readable: the capture resumes the transaction after them. */
    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_position(ob).head_seq, 10);
    assert_int_equal(rt_outbox_next_seq(ob), 15);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 14);
    s_check_t c = s_read_all(ob, 1, 5, 0);
    assert_int_equal(c.count, 14);

    /* Its remaining chunks follow at 15.. */
    s_append(ob, 2, 0, 5, 16);
    rt_outbox_destroy(&ob);
    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 17);
    c = s_read_all(ob, 1, 5, 0);
    assert_int_equal(c.count, 16);
    rt_outbox_destroy(&ob);

    /* Only chunks, everything before trimmed: still kept after a reopen. */
    ob = s_open(state, 0, 0);
    size_t deleted;
    assert_int_equal(rt_outbox_trim(ob, 16, 0, &deleted), 0);
    assert_int_equal(deleted, 16);
    s_append(ob, 3, 0, 5, 16);
    rt_outbox_destroy(&ob);
    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 20);
    assert_int_equal(rt_outbox_first_seq(ob), 17);
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 3);
    c = s_read_all(ob, 17, 5, 0);
    assert_int_equal(c.count, 3);

    /* Discarded when the source sends another transaction instead: seqs reused. */
    assert_int_equal(rt_outbox_discard_open(ob), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 17);
    s_append(ob, 2, 0, 6, 18);
    c = (s_check_t){.salt = 6};
    assert_int_equal(rt_outbox_read(ob, 17, 0, 0, s_visit, &c), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, 2);
    rt_outbox_destroy(&ob);
}

static void test_discard_open(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    /* Nothing above head_seq: nothing to do. */
    assert_int_equal(rt_outbox_discard_open(ob), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 1);

    s_append(ob, 8, 0, 14, 8);
    s_append(ob, 5, 0, 14, 8); /* 9..13: the source connection broke mid-transaction */
    assert_int_equal(rt_outbox_discard_open(ob), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 9);
    assert_int_equal(rt_outbox_position(ob).head_seq, 8);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 8);
    assert_int_equal(rt_outbox_discard_open(ob), 0);

    /* The resent transaction reuses the seqs. */
    s_append(ob, 3, 0, 15, 11);
    s_check_t c = {.salt = 14, .alt_from = 9, .alt_salt = 15};
    assert_int_equal(rt_outbox_read(ob, 1, 0, 0, s_visit, &c), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, 11);

    /* Everything trimmed, then chunks discarded: first_seq stays head_seq + 1. */
    size_t deleted;
    assert_int_equal(rt_outbox_trim(ob, 11, 0, &deleted), 0);
    assert_int_equal(deleted, 11);
    s_append(ob, 2, 0, 16, 11);
    assert_int_equal(rt_outbox_discard_open(ob), 0);
    assert_int_equal(rt_outbox_first_seq(ob), 12);
    assert_int_equal(rt_outbox_next_seq(ob), 12);
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 0);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 12);
    assert_int_equal(rt_outbox_first_seq(ob), 12);
    rt_outbox_destroy(&ob);
}

static void test_put_zero_records(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    rt_outbox_pos_t pos = {.head_seq = 0, .last_commit_lsn = 0x10, .last_end_lsn = 0x20};
    assert_int_equal(rt_outbox_put(ob, NULL, 0, &pos), 0);
    assert_int_equal(rt_outbox_position(ob).last_end_lsn, 0x20);
    assert_int_equal(rt_outbox_next_seq(ob), 1);

    /* Chunks first, then a put of zero records that closes them. */
    s_append(ob, 3, 0, 8, 0);
    s_check_t c = s_read_all(ob, 1, 8, 0);
    assert_int_equal(c.count, 3);
    pos = s_pos(3);
    assert_int_equal(rt_outbox_put(ob, NULL, 0, &pos), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 4);
    c = s_read_all(ob, 1, 8, 0);
    assert_int_equal(c.count, 3);

    /* A new end LSN without records (e.g. a skipped transaction). */
    pos.last_end_lsn += 1000;
    assert_int_equal(rt_outbox_put(ob, NULL, 0, &pos), 0);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    rt_outbox_pos_t got = rt_outbox_position(ob);
    assert_int_equal(got.head_seq, 3);
    assert_int_equal(got.last_commit_lsn, pos.last_commit_lsn);
    assert_int_equal(got.last_end_lsn, pos.last_end_lsn);
    assert_int_equal(rt_outbox_next_seq(ob), 4);
    rt_outbox_destroy(&ob);
}

static void test_trim(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    s_append(ob, 90, 0, 9, 90);
    s_append(ob, 10, 0, 9, 90); /* 91..100 above head */

    size_t deleted = 12345;
    assert_int_equal(rt_outbox_trim(ob, 10, 1000, &deleted), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(rt_outbox_first_seq(ob), 11);
    s_check_t c = {.salt = 9};
    assert_int_equal(rt_outbox_read(ob, 5, 0, 0, s_visit, &c), RT_ETRIMMED);
    assert_int_equal(rt_outbox_read(ob, 10, 0, 0, s_visit, &c), RT_ETRIMMED);
    assert_int_equal(c.count, 0);
    c = s_read_all(ob, 11, 9, 0);
    assert_int_equal(c.count, 90); /* 11..100: the chunks above head too */

    /* At most max_records per call. */
    assert_int_equal(rt_outbox_trim(ob, 50, 5, &deleted), 0);
    assert_int_equal(deleted, 5);
    assert_int_equal(rt_outbox_first_seq(ob), 16);
    /* Nothing to do below first_seq. */
    assert_int_equal(rt_outbox_trim(ob, 12, 5, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rt_outbox_first_seq(ob), 16);

    /* Never past head_seq: 91..100 stay. */
    assert_int_equal(rt_outbox_trim(ob, 1000, 0, &deleted), 0);
    assert_int_equal(deleted, 75);
    assert_int_equal(rt_outbox_first_seq(ob), 91);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.first_seq, 91);
    assert_int_equal(rt_outbox_read(ob, 90, 0, 0, s_visit, &c), RT_ETRIMMED);
    c = s_read_all(ob, 91, 9, 0);
    assert_int_equal(c.count, 10);

    /* Close the open transaction. */
    s_append(ob, 2, 0, 9, 102);
    c = s_read_all(ob, 91, 9, 0);
    assert_int_equal(c.count, 12);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_first_seq(ob), 91);
    assert_int_equal(rt_outbox_next_seq(ob), 103);

    /* Full trim: empty, first_seq = head_seq + 1, and appends go on. */
    assert_int_equal(rt_outbox_trim(ob, 102, 0, &deleted), 0);
    assert_int_equal(deleted, 12);
    assert_int_equal(rt_outbox_first_seq(ob), 103);
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, 0);
    assert_int_equal(rt_outbox_read(ob, 102, 0, 0, s_visit, &c), RT_ETRIMMED);
    c = s_read_all(ob, 103, 9, 0);
    assert_int_equal(c.count, 0);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_first_seq(ob), 103);
    assert_int_equal(rt_outbox_next_seq(ob), 103);
    s_append(ob, 4, 0, 9, 106);
    assert_int_equal(rt_outbox_first_seq(ob), 103);
    c = s_read_all(ob, 103, 9, 0);
    assert_int_equal(c.count, 4);
    assert_int_equal(c.first, 103);
    rt_outbox_destroy(&ob);
}

typedef struct {
    size_t n;
    rt_outbox_sub_t subs[8];
    size_t stop_after;
    rt_outbox_t *ob; /* when set, each callback updates the subscriber it got */
} s_subs_t;

static int s_sub_visit(void *arg, const rt_outbox_sub_t *sub)
{
    s_subs_t *s = arg;
    if (s->n < 8)
        s->subs[s->n] = *sub;
    s->n++;
    if (s->ob) {
        rt_outbox_sub_t upd = *sub;
        upd.acked_seq += 1000;
        if (rt_outbox_sub_put(s->ob, &upd) != 0)
            return 7;
    }
    if (s->stop_after && s->n >= s->stop_after)
        return 42;
    return 0;
}

static rt_outbox_sub_t s_sub(const char *name, uint64_t acked, int32_t state, bool enabled)
{
    rt_outbox_sub_t sub = {.acked_seq = acked, .state = state, .enabled = enabled};
    snprintf(sub.name, sizeof sub.name, "%s", name);
    return sub;
}

static void test_subscribers(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    rt_outbox_sub_t got;
    assert_int_equal(rt_outbox_sub_get(ob, "replica-b", &got), RT_ENOTFOUND);
    s_subs_t s = {0};
    assert_int_equal(rt_outbox_sub_each(ob, s_sub_visit, &s), 0);
    assert_int_equal(s.n, 0);

    rt_outbox_sub_t b = s_sub("replica-b", 77, -3, true);
    rt_outbox_sub_t a = s_sub("replica-a", 0xFFFFFFFFFFull, 2, false);
    rt_outbox_sub_t c = s_sub("replica-c", 5, 0, true);
    assert_int_equal(rt_outbox_sub_put(ob, &b), 0);
    assert_int_equal(rt_outbox_sub_put(ob, &a), 0);
    assert_int_equal(rt_outbox_sub_put(ob, &c), 0);

    assert_int_equal(rt_outbox_sub_get(ob, "replica-b", &got), 0);
    assert_string_equal(got.name, "replica-b");
    assert_int_equal(got.acked_seq, 77);
    assert_int_equal(got.state, -3);
    assert_true(got.enabled);

    b.acked_seq = 90;
    b.state = 4;
    b.enabled = false;
    assert_int_equal(rt_outbox_sub_put(ob, &b), 0);
    assert_int_equal(rt_outbox_sub_get(ob, "replica-b", &got), 0);
    assert_int_equal(got.acked_seq, 90);
    assert_int_equal(got.state, 4);
    assert_false(got.enabled);

    /* Name order, all fields. */
    s = (s_subs_t){0};
    assert_int_equal(rt_outbox_sub_each(ob, s_sub_visit, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.subs[0].name, "replica-a");
    assert_int_equal(s.subs[0].acked_seq, 0xFFFFFFFFFFull);
    assert_int_equal(s.subs[0].state, 2);
    assert_false(s.subs[0].enabled);
    assert_string_equal(s.subs[1].name, "replica-b");
    assert_string_equal(s.subs[2].name, "replica-c");
    assert_true(s.subs[2].enabled);

    s = (s_subs_t){.stop_after = 2};
    assert_int_equal(rt_outbox_sub_each(ob, s_sub_visit, &s), 42);
    assert_int_equal(s.n, 2);

    /* The callback may write: no snapshot is open while it runs. */
    s = (s_subs_t){.ob = ob};
    assert_int_equal(rt_outbox_sub_each(ob, s_sub_visit, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(rt_outbox_sub_get(ob, "replica-c", &got), 0);
    assert_int_equal(got.acked_seq, 1005);

    assert_int_equal(rt_outbox_sub_delete(ob, "replica-b"), 0);
    assert_int_equal(rt_outbox_sub_get(ob, "replica-b", &got), RT_ENOTFOUND);
    assert_int_equal(rt_outbox_sub_delete(ob, "replica-b"), RT_ENOTFOUND);

    /* Names must fit rt_outbox_sub_t.name. */
    rt_outbox_sub_t bad = s_sub("", 1, 0, true);
    assert_int_equal(rt_outbox_sub_put(ob, &bad), RT_EINVAL);
    memset(bad.name, 'x', sizeof bad.name); /* no terminating NUL */
    assert_int_equal(rt_outbox_sub_put(ob, &bad), RT_EINVAL);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    s = (s_subs_t){0};
    assert_int_equal(rt_outbox_sub_each(ob, s_sub_visit, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.subs[0].name, "replica-a");
    assert_int_equal(s.subs[0].acked_seq, 0xFFFFFFFFFFull + 1000);
    assert_string_equal(s.subs[1].name, "replica-c");
    assert_int_equal(s.subs[1].acked_seq, 1005);
    assert_int_equal(rt_outbox_sub_get(ob, "replica-a", &got), 0);
    assert_int_equal(got.state, 2);
    assert_false(got.enabled);
    rt_outbox_destroy(&ob);
}

/* keep_from and keep_copied survive a reopen; clearing keep_from writes the layout
 * without it again, which reads back as none. */
static void test_subscriber_keep_from(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    rt_outbox_sub_t a = s_sub("replica-a", 40, 1, true);
    a.keep_from = 31;
    a.resync = true;
    assert_int_equal(rt_outbox_sub_put(ob, &a), 0);
    rt_outbox_sub_t got;
    assert_int_equal(rt_outbox_sub_get(ob, "replica-a", &got), 0);
    assert_int_equal(got.keep_from, 31);
    assert_false(got.keep_copied);
    a.keep_copied = true;
    assert_int_equal(rt_outbox_sub_put(ob, &a), 0);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_sub_get(ob, "replica-a", &got), 0);
    assert_int_equal(got.acked_seq, 40);
    assert_int_equal(got.keep_from, 31);
    assert_true(got.keep_copied);
    assert_true(got.resync);
    assert_true(got.enabled);

    a.keep_from = 0; /* keep_copied without keep_from means nothing and is not stored */
    assert_int_equal(rt_outbox_sub_put(ob, &a), 0);
    assert_int_equal(rt_outbox_sub_get(ob, "replica-a", &got), 0);
    assert_int_equal(got.keep_from, 0);
    assert_false(got.keep_copied);
    assert_int_equal(got.acked_seq, 40);
    rt_outbox_destroy(&ob);
}

static void test_meta_strings(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    char buf[64];
    assert_int_equal(rt_outbox_meta_get(ob, "slot", buf, sizeof buf), RT_ENOTFOUND);
    assert_int_equal(rt_outbox_meta_set(ob, "slot", "rt_slot_one"), 0);
    assert_int_equal(rt_outbox_meta_set(ob, "source", "orders-db"), 0);
    assert_int_equal(rt_outbox_meta_get(ob, "slot", buf, sizeof buf), 0);
    assert_string_equal(buf, "rt_slot_one");
    assert_int_equal(rt_outbox_meta_set(ob, "slot", "rt_s2"), 0);
    assert_int_equal(rt_outbox_meta_get(ob, "slot", buf, sizeof buf), 0);
    assert_string_equal(buf, "rt_s2");
    assert_int_equal(rt_outbox_meta_set(ob, "empty", ""), 0);
    assert_int_equal(rt_outbox_meta_get(ob, "empty", buf, sizeof buf), 0);
    assert_string_equal(buf, "");

    /* Too small a buffer (room for the NUL is needed). */
    char small[5];
    assert_int_equal(rt_outbox_meta_get(ob, "slot", small, sizeof small), RT_EINVAL);
    char exact[6];
    assert_int_equal(rt_outbox_meta_get(ob, "slot", exact, sizeof exact), 0);
    assert_string_equal(exact, "rt_s2");

    /* The position and format keys are not strings and cannot be overwritten. */
    assert_int_equal(rt_outbox_meta_set(ob, "format", "2"), RT_EINVAL);
    assert_int_equal(rt_outbox_meta_set(ob, "head_seq", "9"), RT_EINVAL);
    assert_int_equal(rt_outbox_meta_get(ob, "last_end_lsn", buf, sizeof buf), RT_EINVAL);
    assert_int_equal(rt_outbox_meta_set(ob, "", "x"), RT_EINVAL);
    rt_outbox_destroy(&ob);

    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_meta_get(ob, "slot", buf, sizeof buf), 0);
    assert_string_equal(buf, "rt_s2");
    assert_int_equal(rt_outbox_meta_get(ob, "source", buf, sizeof buf), 0);
    assert_string_equal(buf, "orders-db");
    rt_outbox_destroy(&ob);
}

static void test_map_growth(void **state)
{
    const size_t len = 60 * KIB, batch = 16, total = 20 * MIB / len + 1;
    rt_outbox_t *ob = s_open(state, 1 * MIB, 0);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    uint64_t first_map = st.map_bytes;
    assert_true(first_map < 2 * MIB);

    size_t done = 0;
    while (done < total) {
        size_t n = total - done < batch ? total - done : batch;
        s_append(ob, n, len, 10, done + n);
        done += n;
    }
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, total);
    assert_true(st.map_bytes >= 20 * MIB);
    assert_true(st.used_bytes >= total * len);
    assert_true(st.used_bytes <= st.map_bytes);
    rt_outbox_destroy(&ob);

    /* Reopened with the small map again: all there, and it grows again as needed. */
    ob = s_open(state, 1 * MIB, 0);
    assert_int_equal(rt_outbox_next_seq(ob), total + 1);
    s_check_t c = s_read_all(ob, 1, 10, len);
    assert_int_equal(c.count, total);
    assert_int_equal(c.bytes, total * len);
    s_append(ob, batch, len, 10, total + batch);
    c = s_read_all(ob, total - 5, 10, len);
    assert_int_equal(c.count, batch + 6);
    rt_outbox_destroy(&ob);
}

static void test_max_bytes(void **state)
{
    const size_t len = 60 * KIB;
    const uint64_t max = 4 * MIB;
    rt_outbox_t *ob = s_open(state, 0, max);

    /* A batch that alone passes the limit: nothing written. */
    assert_int_equal(s_try_append(ob, 100, len, 11, 100), RT_EFULL);
    assert_int_equal(rt_outbox_next_seq(ob), 1);
    assert_int_equal(rt_outbox_position(ob).head_seq, 0);

    size_t stored = 0;
    int rc;
    while ((rc = s_try_append(ob, 1, len, 11, stored + 1)) == 0)
        stored++;
    assert_int_equal(rc, RT_EFULL);
    assert_true(stored > 40);
    assert_true(stored < 70);
    assert_int_equal(rt_outbox_next_seq(ob), stored + 1);
    assert_int_equal(rt_outbox_position(ob).head_seq, stored);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, stored);
    assert_true(st.used_bytes <= max);
    uint64_t full_file = s_file_size(state);

    /* Still refused after a reopen: the limit is about what is stored. */
    rt_outbox_destroy(&ob);
    ob = s_open(state, 0, max);
    assert_int_equal(s_try_append(ob, 1, len, 11, stored + 1), RT_EFULL);
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_int_equal(st.records, stored);
    /* Small puts of the position alone still go through. */
    rt_outbox_pos_t pos = rt_outbox_position(ob);
    assert_int_equal(rt_outbox_put(ob, NULL, 0, &pos), 0);

    /* Trimming frees pages that LMDB reuses: puts succeed again, the file stays. */
    size_t deleted;
    assert_int_equal(rt_outbox_trim(ob, stored, 0, &deleted), 0);
    assert_int_equal(deleted, stored);
    for (size_t i = 0; i < stored - 2; i++)
        s_append(ob, 1, len, 11, rt_outbox_next_seq(ob));
    assert_true(s_file_size(state) <= full_file * 3 / 2);
    s_check_t c = s_read_all(ob, stored + 1, 11, len);
    assert_int_equal(c.count, stored - 2);
    rt_outbox_destroy(&ob);
}

/* n records of len bytes (s_pattern with salt) from seq `first`, for a split put; freed
 * by s_recs_free. */
static rt_outbox_rec_t *s_recs(uint64_t first, size_t n, size_t len, unsigned salt)
{
    rt_outbox_rec_t *recs = calloc(n ? n : 1, sizeof *recs);
    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        unsigned char *buf = malloc(len);
        assert_non_null(buf);
        s_pattern(buf, len, first + i, salt);
        recs[i].data = buf;
        recs[i].len = len;
    }
    return recs;
}

static void s_recs_free(rt_outbox_rec_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)recs[i].data);
    free(recs);
}

/* A put written on a thread of its own, after an optional delay. */
typedef struct {
    rt_outbox_t *ob;
    rt_outbox_put_t *put;
    unsigned delay_ms;
    int rc; /* out: rt_outbox_put_write's result */
} s_writer_t;

static void *s_writer(void *arg)
{
    s_writer_t *w = arg;
    if (w->delay_ms)
        usleep(w->delay_ms * 1000u);
    w->rc = rt_outbox_put_write(w->ob, w->put);
    return NULL;
}

/* The owning thread reads and writes while a put is written on another thread; the
 * position moves only at rt_outbox_put_end. */
static void test_split_put(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    s_append(ob, 10, 0, 20, 10);

    const size_t n = 50, len = 200;
    rt_outbox_rec_t *recs = s_recs(11, n, len, 21);
    rt_outbox_pos_t pos = s_pos(60);
    rt_outbox_put_t put;
    assert_int_equal(rt_outbox_put_begin(ob, recs, n, &pos, &put), 0);
    assert_int_equal(put.seq, 11);
    /* One put at a time; no discard meanwhile. */
    rt_outbox_put_t other;
    assert_int_equal(rt_outbox_put_begin(ob, recs, 1, &pos, &other), RT_EINVAL);
    assert_int_equal(rt_outbox_put(ob, NULL, 0, &pos), RT_EINVAL);
    assert_int_equal(rt_outbox_discard_open(ob), RT_EINVAL);

    s_writer_t w = {.ob = ob, .put = &put, .delay_ms = 20};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_writer, &w), 0);
    /* Meanwhile: reads see the position of the last put ended, writes wait their turn. */
    for (int i = 0; i < 20; i++) {
        s_check_t c = s_read_all(ob, 1, 20, 0);
        assert_int_equal(c.count, 10);
        rt_outbox_sub_t sub = {.acked_seq = (uint64_t)i, .enabled = true};
        snprintf(sub.name, sizeof sub.name, "replica-%d", i % 3);
        assert_int_equal(rt_outbox_sub_put(ob, &sub), 0);
        assert_int_equal(rt_outbox_meta_set(ob, "note", "split"), 0);
        rt_outbox_stat_t st;
        assert_int_equal(rt_outbox_stat(ob, &st), 0);
        usleep(1000);
    }
    size_t deleted;
    assert_int_equal(rt_outbox_trim(ob, 5, 0, &deleted), 0);
    assert_int_equal(deleted, 5);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 11);
    assert_int_equal(rt_outbox_position(ob).head_seq, 10);

    assert_int_equal(rt_outbox_put_end(ob, &put, w.rc), 0);
    s_recs_free(recs, n);
    assert_int_equal(rt_outbox_next_seq(ob), 61);
    assert_int_equal(rt_outbox_position(ob).head_seq, 60);
    assert_int_equal(rt_outbox_first_seq(ob), 6);
    s_check_t c = {.salt = 20, .alt_from = 11, .alt_salt = 21, .len = 0};
    /* seqs 6..10 have s_len lengths, 11..60 have len: read the two ranges apart */
    assert_int_equal(rt_outbox_read(ob, 6, 5, 0, s_visit, &c), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, 5);
    c = s_read_all(ob, 11, 21, len);
    assert_int_equal(c.count, n);

    /* A refused put ends with nothing stored, and the next one may begin. */
    recs = s_recs(61, 1, len, 22);
    pos = s_pos(59);
    assert_int_equal(rt_outbox_put_begin(ob, recs, 1, &pos, &put), RT_EINVAL);
    pos = s_pos(61);
    assert_int_equal(rt_outbox_put_begin(ob, recs, 1, &pos, &put), 0);
    assert_int_equal(rt_outbox_put_end(ob, &put, RT_EIO), RT_EIO);
    assert_int_equal(rt_outbox_next_seq(ob), 61);
    assert_int_equal(rt_outbox_put(ob, recs, 1, &pos), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 62);
    s_recs_free(recs, 1);
    rt_outbox_destroy(&ob);

    /* All of it durable. */
    ob = s_open(state, 0, 0);
    assert_int_equal(rt_outbox_next_seq(ob), 62);
    assert_int_equal(rt_outbox_position(ob).head_seq, 61);
    char note[16];
    assert_int_equal(rt_outbox_meta_get(ob, "note", note, sizeof note), 0);
    assert_string_equal(note, "split");
    rt_outbox_destroy(&ob);
}

/* A put too large for the map: its write says RT_EAGAIN, its end grows the map and asks
 * for the write again. A write of the owning thread that finds the map full meanwhile
 * waits for the other thread's write before it grows the map. */
static void test_split_put_map_growth(void **state)
{
    const size_t len = 60 * KIB, n = 40; /* 2.4 MiB */
    rt_outbox_t *ob = s_open(state, 1 * MIB, 0);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    uint64_t first_map = st.map_bytes;

    rt_outbox_rec_t *recs = s_recs(1, n, len, 23);
    rt_outbox_pos_t pos = s_pos(n);
    rt_outbox_put_t put;
    assert_int_equal(rt_outbox_put_begin(ob, recs, n, &pos, &put), 0);
    int rc, rounds = 0;
    do {
        rc = rt_outbox_put_write(ob, &put);
        assert_true(rc == 0 || rc == RT_EAGAIN);
        assert_int_equal(rt_outbox_next_seq(ob), 1);
        rc = rt_outbox_put_end(ob, &put, rc);
        rounds++;
    } while (rc == RT_EAGAIN);
    assert_int_equal(rc, 0);
    assert_true(rounds > 1);
    assert_int_equal(put.growths, rounds - 1);
    assert_int_equal(rt_outbox_next_seq(ob), n + 1);
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_true(st.map_bytes > first_map);
    assert_int_equal(st.records, n);
    s_check_t c = s_read_all(ob, 1, 23, len);
    assert_int_equal(c.count, n);
    s_recs_free(recs, n);

    /* Fill what is left of the map, so the next writes find it full. */
    uint64_t map = st.map_bytes;
    while (st.used_bytes + 4 * len < map) {
        s_append(ob, 1, len, 23, rt_outbox_next_seq(ob));
        assert_int_equal(rt_outbox_stat(ob, &st), 0);
    }
    assert_int_equal(st.map_bytes, map);

    /* A big put written late on another thread, while the owning thread writes a value
     * that does not fit either. */
    uint64_t next = rt_outbox_next_seq(ob);
    recs = s_recs(next, 16, len, 24);
    pos = s_pos(next + 15);
    assert_int_equal(rt_outbox_put_begin(ob, recs, 16, &pos, &put), 0);
    s_writer_t w = {.ob = ob, .put = &put, .delay_ms = 50};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_writer, &w), 0);
    size_t big = 5 * map / 4; /* grown at least once more, after the thread's write */
    char *value = malloc(big + 1);
    assert_non_null(value);
    memset(value, 'v', big);
    value[big] = '\0';
    assert_int_equal(rt_outbox_meta_set(ob, "big", value), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_true(w.rc == 0 || w.rc == RT_EAGAIN);
    rc = rt_outbox_put_end(ob, &put, w.rc);
    while (rc == RT_EAGAIN)
        rc = rt_outbox_put_end(ob, &put, rt_outbox_put_write(ob, &put));
    assert_int_equal(rc, 0);
    assert_int_equal(rt_outbox_next_seq(ob), next + 16);
    assert_int_equal(rt_outbox_stat(ob, &st), 0);
    assert_true(st.map_bytes > map);
    c = s_read_all(ob, next, 24, len);
    assert_int_equal(c.count, 16);
    s_recs_free(recs, 16);
    free(value);
    rt_outbox_destroy(&ob);
}

/* A put over the size limit: RT_EFULL from the write, nothing stored, begin again. */
static void test_split_put_full(void **state)
{
    const size_t len = 60 * KIB;
    rt_outbox_t *ob = s_open(state, 0, 2 * MIB);
    rt_outbox_rec_t *recs = s_recs(1, 64, len, 25);
    rt_outbox_pos_t pos = s_pos(64);
    rt_outbox_put_t put;
    assert_int_equal(rt_outbox_put_begin(ob, recs, 64, &pos, &put), 0);
    assert_int_equal(rt_outbox_put_end(ob, &put, rt_outbox_put_write(ob, &put)), RT_EFULL);
    assert_int_equal(rt_outbox_next_seq(ob), 1);
    pos = s_pos(8);
    assert_int_equal(rt_outbox_put_begin(ob, recs, 8, &pos, &put), 0);
    assert_int_equal(rt_outbox_put_end(ob, &put, rt_outbox_put_write(ob, &put)), 0);
    assert_int_equal(rt_outbox_next_seq(ob), 9);
    s_recs_free(recs, 64);
    rt_outbox_destroy(&ob);
}

static void test_format_mismatch(void **state)
{
    rt_outbox_t *ob = s_open(state, 0, 0);
    s_append(ob, 3, 0, 12, 3);
    rt_outbox_destroy(&ob);

    /* Rewrite "format" directly with LMDB. */
    for (int round = 0; round < 2; round++) {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi meta;
        assert_int_equal(mdb_env_create(&env), 0);
        assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
        assert_int_equal(mdb_env_open(env, s_dir(state), MDB_NOTLS, 0600), 0);
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
        MDB_val k = {.mv_size = 6, .mv_data = "format"}, v;
        assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
        assert_int_equal(v.mv_size, 8);
        assert_int_equal(rt_get_be64(v.mv_data), round == 0 ? RT_OUTBOX_FORMAT : 2);
        unsigned char buf[8];
        rt_put_be64(buf, round == 0 ? 2 : RT_OUTBOX_FORMAT);
        v.mv_size = 8;
        v.mv_data = buf;
        assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
        assert_int_equal(mdb_txn_commit(txn), 0);
        mdb_env_close(env);

        if (round == 0) {
            /* Refused twice: the failed open changed nothing. */
            rt_outbox_opts_t opts = {0};
            assert_null(rt_outbox_open(s_dir(state), &opts));
            assert_null(rt_outbox_open(s_dir(state), &opts));
        }
    }
    /* Back to this format: opens, and the records are intact. */
    ob = s_open(state, 0, 0);
    s_check_t c = s_read_all(ob, 1, 12, 0);
    assert_int_equal(c.count, 3);
    rt_outbox_destroy(&ob);
}

static void test_churn_bounded(void **state)
{
    const size_t total = 100000, batch = 1000, len = 120;
    rt_outbox_t *ob = s_open(state, 0, 0);
    uint64_t first_size = 0;
    for (int round = 0; round < 5; round++) {
        uint64_t start = rt_outbox_next_seq(ob);
        for (size_t done = 0; done < total; done += batch)
            s_append(ob, batch, len, 13, start + done + batch - 1);
        rt_outbox_stat_t st;
        assert_int_equal(rt_outbox_stat(ob, &st), 0);
        assert_int_equal(st.records, total);
        assert_int_equal(st.first_seq, start);
        /* A window at the end of the round reads back intact. */
        s_check_t c = {.salt = 13, .len = len};
        assert_int_equal(rt_outbox_read(ob, start + total - 300, 256, 0, s_visit, &c), 0);
        assert_int_equal(c.count, 256);
        assert_int_equal(c.bad, 0);

        uint64_t size = s_file_size(state);
        print_message("round %d: data.mdb %llu bytes, %llu in use\n", round,
                      (unsigned long long)size, (unsigned long long)st.used_bytes);
        if (round == 0)
            first_size = size;
        assert_true(size <= first_size * 3);

        size_t deleted, all = 0;
        do {
            assert_int_equal(rt_outbox_trim(ob, UINT64_MAX, 10000, &deleted), 0);
            assert_true(deleted <= 10000);
            all += deleted;
        } while (deleted > 0);
        assert_int_equal(all, total);
        assert_int_equal(rt_outbox_first_seq(ob), start + total);
        assert_int_equal(rt_outbox_stat(ob, &st), 0);
        assert_int_equal(st.records, 0);
    }
    rt_outbox_destroy(&ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_read_limits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_chunks_readable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_open_chunks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_start_at, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_discard_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_put_zero_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_trim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_keep_from, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscribers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_meta_strings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_split_put, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_split_put_map_growth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_split_put_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_format_mismatch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_churn_bounded, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
