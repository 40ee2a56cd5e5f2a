/* tests/unit/test_resume.c - placing a HELLO by commit LSN (publisher/resume.c): where a
 * subscriber that committed records before they were stored stands among the records a
 * later run stored, in a real LMDB outbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "outbox.h"
#include "stream.h"
#include "unit_tmp.h"
#include "wire.h"

#include <string.h>

typedef struct {
    char dir[512];
    rt_outbox_t *ob;
} s_fixture_t;

/* One record of the outbox built below: its transaction's commit LSN and flags, or a
 * record of sequences (which carries its preceding transaction's commit LSN). */
typedef struct {
    rt_lsn_t lsn;
    uint8_t flags;
    bool sequences;
} s_spec_t;

/* seq 1: A (lsn 100); 2: sequences; 3-4: B in two chunks (lsn 200); 5: C (lsn 300);
 * 6: sequences. */
static const s_spec_t s_recs[] = {
    {100, RT_REC_FIRST | RT_REC_LAST, false},
    {100, RT_REC_FIRST | RT_REC_LAST, true},
    {200, RT_REC_FIRST, false},
    {200, RT_REC_LAST, false},
    {300, RT_REC_FIRST | RT_REC_LAST, false},
    {300, RT_REC_FIRST | RT_REC_LAST, true},
};
#define S_NRECS (sizeof s_recs / sizeof s_recs[0])

static int s_setup(void **state)
{
    s_fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    if (rt_unit_mkdtemp(fx->dir, sizeof fx->dir, "resume") != 0 ||
        !(fx->ob = rt_outbox_open(fx->dir, NULL))) {
        free(fx);
        return -1;
    }
    rt_record_builder_t *b = rt_record_builder_new();
    /* Stored in one put per whole transaction, the way the committer stores them. */
    const void *frames[S_NRECS];
    size_t lens[S_NRECS];
    char *copies[S_NRECS];
    for (size_t i = 0; i < S_NRECS; i++) {
        const s_spec_t *r = &s_recs[i];
        rt_record_builder_start(b, i + 1, r->sequences ? 0 : 700 + (uint32_t)r->lsn, r->lsn, 1000,
                                NULL);
        if (r->sequences)
            rt_record_builder_sequence(b, "public", "s", (int64_t)i);
        if (rt_record_builder_finish(b, r->flags, r->flags & RT_REC_LAST ? r->lsn + 8 : 0,
                                     &frames[i], &lens[i]) != 0)
            return -1;
        copies[i] = malloc(lens[i]);
        memcpy(copies[i], frames[i], lens[i]);
        frames[i] = copies[i];
    }
    rt_record_builder_destroy(&b);
    size_t from = 0;
    for (size_t i = 0; i < S_NRECS; i++) {
        if (!(s_recs[i].flags & RT_REC_LAST))
            continue;
        rt_outbox_rec_t recs[S_NRECS];
        for (size_t k = from; k <= i; k++)
            recs[k - from] = (rt_outbox_rec_t){frames[k], lens[k]};
        rt_outbox_pos_t pos = {
            .head_seq = i + 1, .last_commit_lsn = s_recs[i].lsn, .last_end_lsn = s_recs[i].lsn + 8};
        if (rt_outbox_put(fx->ob, recs, i + 1 - from, &pos) != 0)
            return -1;
        from = i + 1;
    }
    for (size_t i = 0; i < S_NRECS; i++)
        free(copies[i]);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *fx = *state;
    rt_outbox_destroy(&fx->ob);
    rt_unit_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* The position found for HELLO{seq, lsn}, or the error code (as a negative number). */
static int64_t s_place(rt_outbox_t *ob, uint64_t seq, rt_lsn_t lsn, uint64_t acked)
{
    uint64_t pos = 12345;
    int rc = rt_stream_resume_position(ob, seq, lsn, acked, &pos);
    return rc == RT_OK ? (int64_t)pos : rc;
}

static void test_places(void **state)
{
    s_fixture_t *fx = *state;
    const struct {
        uint64_t seq;
        rt_lsn_t lsn;
        int64_t want;
    } cases[] = {
        /* The same numbering: B's LAST chunk, A and C where they were. */
        {4, 200, 4},
        {1, 100, 1},
        {5, 300, 5},
        /* Numbered anew: the earlier run had B's LAST chunk at 5 (a record of sequences
         * more before it), or C at 3; past the head, C is stored, so its place is known. */
        {5, 200, 4},
        {3, 300, 5},
        {9, 300, 5},
        /* A transaction this run did not publish (lsn 150): the one before it. */
        {3, 150, 1},
        /* Before every record. */
        {1, 50, 0},
        /* A record of sequences after the same transaction stays where it is; one
         * found past the head (not where the subscriber left it) is not a transaction's
         * end: its transaction's is (the records of sequences after it are applied
         * again). */
        {6, 300, 6},
        {2, 100, 2},
        {4, 100, 1},
        /* Not stored that far yet. */
        {9, 400, RT_EAGAIN},
        {7, 301, RT_EAGAIN},
    };
    assert_int_equal(rt_outbox_position(fx->ob).head_seq, 6);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = s_place(fx->ob, cases[i].seq, cases[i].lsn, 0);
        if (got != cases[i].want)
            fail_msg("HELLO{%llu, lsn %llu}: %lld, expected %lld", (unsigned long long)cases[i].seq,
                     (unsigned long long)cases[i].lsn, (long long)got, (long long)cases[i].want);
    }
}

static void test_trimmed(void **state)
{
    s_fixture_t *fx = *state;
    size_t deleted = 0;
    assert_int_equal(rt_outbox_trim(fx->ob, 2, 100, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(rt_outbox_first_seq(fx->ob), 3);
    assert_int_equal(s_place(fx->ob, 4, 200, 0), 4);
    assert_int_equal(s_place(fx->ob, 7, 200, 2), 4);
    /* Nothing kept at or before lsn 100: right before the oldest record only if the
     * subscriber's acknowledged seq says it stood there. */
    assert_int_equal(s_place(fx->ob, 2, 100, 2), 2);
    assert_int_equal(s_place(fx->ob, 2, 100, 0), RT_ETRIMMED);
    assert_int_equal(s_place(fx->ob, 2, 100, 1), RT_ETRIMMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_places, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_trimmed, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
