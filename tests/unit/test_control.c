/* tests/unit/test_control.c - pieces of the control plane that need no daemon: the
 * read-only outbox open (rtctl outbox inspect) and the conflict policy words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply.h"
#include "log.h"
#include "outbox.h"
#include "wire.h"

static char s_dir[512];

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int s_setup(void **state)
{
    (void)state;
    const char *base = getenv("RT_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(s_dir, sizeof s_dir, "%s/control-XXXXXX", base);
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    nftw(s_dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

typedef struct {
    uint64_t n, first, last;
    size_t bytes;
} s_count_t;

static int s_count(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_count_t *c = arg;
    (void)data;
    if (c->n++ == 0)
        c->first = seq;
    c->last = seq;
    c->bytes += len;
    return 0;
}

static int s_sub_seen(void *arg, const rt_outbox_sub_t *sub)
{
    int *n = arg;
    assert_string_equal(sub->name, "replica-1");
    assert_int_equal(sub->acked_seq, 7);
    assert_false(sub->enabled);
    (*n)++;
    return 0;
}

static void test_readonly_outbox(void **state)
{
    (void)state;
    char sub[600];
    /* Not a directory, then an empty directory (no LMDB environment). */
    snprintf(sub, sizeof sub, "%s/missing", s_dir);
    assert_null(rt_outbox_open_readonly(sub));
    snprintf(sub, sizeof sub, "%s/empty", s_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_null(rt_outbox_open_readonly(sub));

    /* A real outbox: 20 records, head at 18 (two chunks of an open transaction), a
     * trimmed start, a paused subscriber and a meta string. */
    snprintf(sub, sizeof sub, "%s/outbox", s_dir);
    rt_outbox_t *w = rt_outbox_open(sub, NULL);
    assert_non_null(w);
    char payload[100];
    rt_outbox_rec_t recs[20];
    for (int i = 0; i < 20; i++) {
        memset(payload, 'a' + i, sizeof payload);
        recs[i] = (rt_outbox_rec_t){payload, sizeof payload};
    }
    rt_outbox_pos_t pos = {.head_seq = 18, .last_commit_lsn = 0x1000, .last_end_lsn = 0x1010};
    assert_int_equal(rt_outbox_put(w, recs, 20, &pos), 0);
    size_t deleted;
    assert_int_equal(rt_outbox_trim(w, 4, 100, &deleted), 0);
    assert_int_equal(deleted, 4);
    rt_outbox_sub_t s = {
        .name = "replica-1", .acked_seq = 7, .state = RT_SUB_PAUSED, .enabled = false};
    assert_int_equal(rt_outbox_sub_put(w, &s), 0);
    assert_int_equal(rt_outbox_meta_set(w, "source", "main"), 0);
    rt_outbox_destroy(&w);

    char data_path[700];
    snprintf(data_path, sizeof data_path, "%s/data.mdb", sub);
    size_t len_before, len_after;
    unsigned char *before = s_slurp(data_path, &len_before);

    rt_outbox_t *r = rt_outbox_open_readonly(sub);
    assert_non_null(r);
    rt_outbox_pos_t got = rt_outbox_position(r);
    assert_int_equal(got.head_seq, 18);
    assert_int_equal(got.last_commit_lsn, 0x1000);
    assert_int_equal(got.last_end_lsn, 0x1010);
    assert_int_equal(rt_outbox_first_seq(r), 5);
    s_count_t c = {0};
    assert_int_equal(rt_outbox_read(r, 5, 0, 0, s_count, &c), 0);
    /* Records above head_seq are not served (and not dropped: nothing is written). */
    assert_int_equal(c.n, 14);
    assert_int_equal(c.first, 5);
    assert_int_equal(c.last, 18);
    assert_int_equal(rt_outbox_read(r, 2, 1, 0, s_count, &c), RT_ETRIMMED);
    rt_outbox_stat_t st;
    assert_int_equal(rt_outbox_stat(r, &st), 0);
    assert_int_equal(st.records, 16);
    assert_int_equal(st.first_seq, 5);
    assert_int_equal(st.head_seq, 18);
    char buf[32];
    assert_int_equal(rt_outbox_meta_get(r, "source", buf, sizeof buf), 0);
    assert_string_equal(buf, "main");
    int nsubs = 0;
    assert_int_equal(rt_outbox_sub_each(r, s_sub_seen, &nsubs), 0);
    assert_int_equal(nsubs, 1);

    /* Every write is refused. */
    assert_int_equal(rt_outbox_put(r, recs, 1, &(rt_outbox_pos_t){.head_seq = 19}), RT_EINVAL);
    assert_int_equal(rt_outbox_trim(r, 10, 100, &deleted), RT_EINVAL);
    assert_int_equal(rt_outbox_discard_open(r), 0); /* nothing above head in its view */
    assert_int_equal(rt_outbox_sub_put(r, &s), RT_EINVAL);
    assert_int_equal(rt_outbox_sub_delete(r, "replica-1"), RT_EINVAL);
    assert_int_equal(rt_outbox_meta_set(r, "slot", "x"), RT_EINVAL);
    rt_outbox_destroy(&r);
    assert_null(r);

    unsigned char *after = s_slurp(data_path, &len_after);
    assert_int_equal(len_before, len_after);
    assert_memory_equal(before, after, len_before);
    free(before);
    free(after);
}

static void test_conflict_policy_words(void **state)
{
    (void)state;
    int p = -1;
    assert_int_equal(rt_conflict_policy_parse("error", &p), 0);
    assert_int_equal(p, RT_CONFLICT_ERROR);
    assert_int_equal(rt_conflict_policy_parse("apply_remote", &p), 0);
    assert_int_equal(p, RT_CONFLICT_APPLY_REMOTE);
    assert_int_equal(rt_conflict_policy_parse("apply-remote", &p), RT_EINVAL);
    assert_int_equal(rt_conflict_policy_parse("", &p), RT_EINVAL);
    assert_string_equal(rt_conflict_policy_name(RT_CONFLICT_ERROR), "error");
    assert_string_equal(rt_conflict_policy_name(RT_CONFLICT_APPLY_REMOTE), "apply_remote");

    /* A fresh applier: error policy, nothing counted, no error. */
    volatile sig_atomic_t stop = 0;
    rt_apply_t *a = rt_apply_new("host=127.0.0.1 port=1", &stop);
    assert_non_null(a);
    assert_int_equal(rt_apply_conflicts(a), 0);
    assert_string_equal(rt_apply_last_error(a), "");
    assert_int_equal(rt_apply_last_commit_ts(a), 0);
    assert_int_equal(rt_apply_last_applied_at(a), 0);
    assert_int_equal(rt_apply_reset(a, 5), RT_EIO); /* not connected */
    rt_apply_destroy(&a);
}

int main(void)
{
    rt_log_init("test_control", RT_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readonly_outbox, s_setup, s_teardown),
        cmocka_unit_test(test_conflict_policy_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
