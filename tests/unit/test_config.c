/* tests/unit/test_config.c - flags, INI files, defaults, bounds and errors of common/config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

typedef struct {
    char *source;
    char *outbox;
    char *name;
    char *config;
    int64_t batch_bytes;
    int64_t port;
    int64_t offset;
    bool verbose;
    bool sync;
    int64_t conflict;
} s_opts_t;

static const char *const s_conflict_words[] = {"error", "apply_remote", "skip", NULL};

static const rt_cfg_param_t s_table[] = {
    {"source", RT_CFG_STR, offsetof(s_opts_t, source), NULL, 0, 0, NULL, true,
     "source database connection string", false},
    {"outbox", RT_CFG_STR, offsetof(s_opts_t, outbox), "/var/lib/rt", 0, 0, NULL, false,
     "outbox directory", false},
    {"name", RT_CFG_STR, offsetof(s_opts_t, name), NULL, 0, 0, NULL, false, "source name", true},
    {"config", RT_CFG_STR, offsetof(s_opts_t, config), NULL, 0, 0, NULL, false,
     "configuration file", false},
    {"batch-bytes", RT_CFG_INT, offsetof(s_opts_t, batch_bytes), "65536", 1, 1 << 30, NULL, false,
     "bytes per batch", false},
    {"port", RT_CFG_INT, offsetof(s_opts_t, port), "7470", 1, 65535, NULL, false, "listen port",
     true},
    {"offset", RT_CFG_INT, offsetof(s_opts_t, offset), NULL, 0, 0, NULL, false, "unbounded integer",
     false},
    {"verbose", RT_CFG_BOOL, offsetof(s_opts_t, verbose), "false", 0, 0, NULL, false, "log more",
     true},
    {"sync", RT_CFG_BOOL, offsetof(s_opts_t, sync), "on", 0, 0, NULL, false, "fsync", false},
    {"conflict", RT_CFG_ENUM, offsetof(s_opts_t, conflict), "error", 0, 0, s_conflict_words, false,
     "conflict policy", false},
};

#define S_N (sizeof s_table / sizeof s_table[0])
#define S_PROG "rt-test"

/* Runs rt_config_load with argv {S_PROG, ...}; the list ends with NULL. */
static int s_load(s_opts_t *o, ...)
{
    char *av[64] = {S_PROG};
    int ac = 1;
    va_list ap;
    va_start(ap, o);
    for (char *arg = va_arg(ap, char *); arg; arg = va_arg(ap, char *)) {
        assert_true(ac < 64);
        av[ac++] = arg;
    }
    va_end(ap);
    return rt_config_load(s_table, S_N, o, ac, av, S_PROG, "Test program summary.");
}

#define S_LOAD(o, ...) s_load((o), __VA_ARGS__, (char *)NULL)

static char s_dir[512];

static int s_setup_group(void **state)
{
    (void)state;
    const char *base = getenv("RT_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0755);
    snprintf(s_dir, sizeof s_dir, "%s/test_config.XXXXXX", base);
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown_group(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to a fresh file in the test directory; returns its path (static buffer). */
static const char *s_write_file(const char *name, const char *text)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Redirects fd (1 or 2) into a temporary file until s_capture_end. */
typedef struct {
    int fd;
    int saved;
    FILE *tmp;
} s_capture_t;

static void s_capture_begin(s_capture_t *c, int fd)
{
    fflush(stdout);
    fflush(stderr);
    c->fd = fd;
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), fd) >= 0);
}

/* Restores the fd and returns what was written (malloc'd). */
static char *s_capture_end(s_capture_t *c)
{
    fflush(stdout);
    fflush(stderr);
    assert_true(dup2(c->saved, c->fd) >= 0);
    close(c->saved);
    long size = ftell(c->tmp);
    if (size < 0)
        size = 0;
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    rewind(c->tmp);
    size_t got = fread(text, 1, (size_t)size, c->tmp);
    text[got] = '\0';
    fclose(c->tmp);
    return text;
}

static void s_assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in output:\n%s", needle, text);
}

static void s_assert_all_null(const s_opts_t *o)
{
    assert_null(o->source);
    assert_null(o->outbox);
    assert_null(o->name);
    assert_null(o->config);
}

static void test_defaults(void **state)
{
    (void)state;
    s_opts_t o;
    memset(&o, 0xa5, sizeof o); /* defaults must not depend on a zeroed struct */
    assert_int_equal(S_LOAD(&o, "--source", "dbname=x"), 0);
    assert_string_equal(o.source, "dbname=x");
    assert_string_equal(o.outbox, "/var/lib/rt");
    assert_null(o.name);
    assert_null(o.config);
    assert_int_equal(o.batch_bytes, 65536);
    assert_int_equal(o.port, 7470);
    assert_int_equal(o.offset, 0);
    assert_false(o.verbose);
    assert_true(o.sync);
    assert_int_equal(o.conflict, 0);
    rt_config_free(s_table, S_N, &o);
    s_assert_all_null(&o);
    rt_config_free(s_table, S_N, &o); /* idempotent */
}

static void test_flags_separate_value(void **state)
{
    (void)state;
    s_opts_t o = {0};
    assert_int_equal(S_LOAD(&o, "--source", "host=a dbname=b", "--outbox", "/tmp/ob", "--name",
                            "n1", "--batch-bytes", "1024", "--port", "+5432", "--offset",
                            "-9223372036854775808", "--verbose", "yes", "--sync", "OFF",
                            "--conflict", "apply_remote"),
                     0);
    assert_string_equal(o.source, "host=a dbname=b");
    assert_string_equal(o.outbox, "/tmp/ob");
    assert_string_equal(o.name, "n1");
    assert_int_equal(o.batch_bytes, 1024);
    assert_int_equal(o.port, 5432);
    assert_true(o.offset == INT64_MIN);
    assert_true(o.verbose);
    assert_false(o.sync);
    assert_int_equal(o.conflict, 1);
    rt_config_free(s_table, S_N, &o);
    s_assert_all_null(&o);
}

static void test_flags_equals_value(void **state)
{
    (void)state;
    s_opts_t o = {0};
    assert_int_equal(S_LOAD(&o, "--source=host=a dbname=b", "--outbox=", "--name=x=y",
                            "--batch-bytes=1073741824", "--port=1", "--offset=-5", "--verbose=1",
                            "--sync=no", "--conflict=skip"),
                     0);
    assert_string_equal(o.source, "host=a dbname=b");
    assert_string_equal(o.outbox, "");
    assert_string_equal(o.name, "x=y");
    assert_int_equal(o.batch_bytes, 1073741824);
    assert_int_equal(o.port, 1);
    assert_int_equal(o.offset, -5);
    assert_true(o.verbose);
    assert_false(o.sync);
    assert_int_equal(o.conflict, 2);
    rt_config_free(s_table, S_N, &o);
}

static void test_bare_bool_and_repeats(void **state)
{
    (void)state;
    s_opts_t o = {0};
    /* bare --verbose followed by another flag; --sync takes the boolean word after it */
    assert_int_equal(S_LOAD(&o, "--verbose", "--source", "a", "--sync", "false", "--name", "first",
                            "--name", "second"),
                     0);
    assert_true(o.verbose);
    assert_false(o.sync);
    assert_string_equal(o.name, "second"); /* the first copy is freed (ASan checks) */
    rt_config_free(s_table, S_N, &o);

    /* bare bool as the last argument */
    assert_int_equal(S_LOAD(&o, "--source", "a", "--verbose"), 0);
    assert_true(o.verbose);
    rt_config_free(s_table, S_N, &o);

    /* a bare bool does not swallow a word that is not boolean */
    s_capture_t c;
    s_capture_begin(&c, 2);
    int rc = S_LOAD(&o, "--source", "a", "--verbose", "stray");
    char *err = s_capture_end(&c);
    assert_int_equal(rc, RT_EINVAL);
    s_assert_contains(err, "rt-test: unexpected argument \"stray\"");
    free(err);
    s_assert_all_null(&o);
}

static void test_ini_file(void **state)
{
    (void)state;
    const char *path =
        s_write_file("good.ini", "# leading comment\n"
                                 "; another comment\n"
                                 "\n"
                                 "[publisher]\n"
                                 "  source = host=db1 dbname=app  \n"
                                 "batch_bytes=2048\n"
                                 "batch-bytes = 4096 # inline comment\n"
                                 "[ any name at all ]\n"
                                 "name = \"  spaced \\\"quoted\\\" back\\\\slash  \" ; c\n"
                                 "outbox = /data/rt#1\n"
                                 "verbose = on\r\n"
                                 "sync = 0\n"
                                 "conflict = APPLY_REMOTE\n"
                                 "offset =    -17\n"
                                 "\t\n");
    char *file = strdup(path);
    s_opts_t o = {0};
    assert_int_equal(S_LOAD(&o, "--config", file), 0);
    assert_string_equal(o.config, file);
    assert_string_equal(o.source, "host=db1 dbname=app");
    assert_int_equal(o.batch_bytes, 4096);
    assert_string_equal(o.name, "  spaced \"quoted\" back\\slash  ");
    assert_string_equal(o.outbox, "/data/rt#1");
    assert_true(o.verbose);
    assert_false(o.sync);
    assert_int_equal(o.conflict, 1);
    assert_int_equal(o.offset, -17);
    assert_int_equal(o.port, 7470); /* default kept */
    rt_config_free(s_table, S_N, &o);
    s_assert_all_null(&o);
    free(file);
}

static void test_flags_override_file(void **state)
{
    (void)state;
    const char *path = s_write_file("override.ini", "source = from-file\n"
                                                    "port = 1000\n"
                                                    "name = file-name\n"
                                                    "verbose = true\n");
    char *file = strdup(path);
    s_opts_t o = {0};
    /* flags before and after --config both win over the file */
    assert_int_equal(S_LOAD(&o, "--port", "2000", "--config=", "--config", file, "--verbose=off"),
                     0);
    assert_string_equal(o.source, "from-file"); /* required, satisfied by the file */
    assert_int_equal(o.port, 2000);
    assert_string_equal(o.name, "file-name");
    assert_false(o.verbose);
    assert_string_equal(o.config, file);
    rt_config_free(s_table, S_N, &o);
    free(file);
}

/* Expects RT_EINVAL and every needle in stderr. */
static void s_expect_error(int rc, const char *err, const char *needle1, const char *needle2)
{
    if (rc != RT_EINVAL)
        fail_msg("rc %d, expected RT_EINVAL; stderr:\n%s", rc, err);
    s_assert_contains(err, needle1);
    if (needle2)
        s_assert_contains(err, needle2);
}

#define S_EXPECT_FLAG_ERROR(needle1, needle2, ...)                                                 \
    do {                                                                                           \
        s_opts_t o_;                                                                               \
        memset(&o_, 0, sizeof o_);                                                                 \
        s_capture_t c_;                                                                            \
        s_capture_begin(&c_, 2);                                                                   \
        int rc_ = S_LOAD(&o_, __VA_ARGS__);                                                        \
        char *err_ = s_capture_end(&c_);                                                           \
        s_expect_error(rc_, err_, needle1, needle2);                                               \
        free(err_);                                                                                \
        s_assert_all_null(&o_);                                                                    \
    } while (0)

static void test_flag_errors(void **state)
{
    (void)state;
    S_EXPECT_FLAG_ERROR("rt-test: unknown option \"--bogus\"", NULL, "--source", "a", "--bogus",
                        "1");
    S_EXPECT_FLAG_ERROR("rt-test: unknown option \"--bogus\"", NULL, "--bogus=1");
    S_EXPECT_FLAG_ERROR("rt-test: unknown option \"-x\"", NULL, "-x");
    S_EXPECT_FLAG_ERROR("rt-test: unexpected argument \"positional\"", NULL, "--source", "a",
                        "positional");
    S_EXPECT_FLAG_ERROR("rt-test: unexpected argument \"--\"", NULL, "--source", "a", "--");
    S_EXPECT_FLAG_ERROR("rt-test: --port: missing value", NULL, "--source", "a", "--port");
    S_EXPECT_FLAG_ERROR("rt-test: --name: missing value", NULL, "--name", "--source", "a");
    S_EXPECT_FLAG_ERROR("rt-test: --batch-bytes: value \"12x\" is not an integer", NULL, "--source",
                        "a", "--batch-bytes", "12x");
    S_EXPECT_FLAG_ERROR("rt-test: --batch-bytes: value \"\" is not an integer", NULL, "--source",
                        "a", "--batch-bytes=");
    S_EXPECT_FLAG_ERROR("rt-test: --port: value \" 5\" is not an integer", NULL, "--source", "a",
                        "--port", " 5");
    S_EXPECT_FLAG_ERROR("rt-test: --offset: value \"99999999999999999999\" is not an integer", NULL,
                        "--source", "a", "--offset", "99999999999999999999");
    S_EXPECT_FLAG_ERROR("rt-test: --port: value \"65536\" is out of range [1, 65535]", NULL,
                        "--source", "a", "--port", "65536");
    S_EXPECT_FLAG_ERROR("rt-test: --port: value \"0\" is out of range [1, 65535]", NULL, "--source",
                        "a", "--port=0");
    S_EXPECT_FLAG_ERROR("rt-test: --verbose: value \"maybe\" is not a boolean", NULL, "--source",
                        "a", "--verbose=maybe");
    S_EXPECT_FLAG_ERROR("rt-test: --conflict: value \"ignore\" is not one of: error, "
                        "apply_remote, skip",
                        NULL, "--source", "a", "--conflict", "ignore");
    S_EXPECT_FLAG_ERROR("rt-test: missing required option --source", NULL, "--port", "5");
}

static void test_bounds_inclusive(void **state)
{
    (void)state;
    s_opts_t o = {0};
    assert_int_equal(S_LOAD(&o, "--source", "a", "--port", "65535", "--batch-bytes", "1"), 0);
    assert_int_equal(o.port, 65535);
    assert_int_equal(o.batch_bytes, 1);
    rt_config_free(s_table, S_N, &o);
    assert_int_equal(S_LOAD(&o, "--source", "a", "--offset", "9223372036854775807"), 0);
    assert_true(o.offset == INT64_MAX);
    rt_config_free(s_table, S_N, &o);
}

/* Writes a file, loads it with --config and expects each needle in stderr. */
static void s_expect_file_error(const char *text, const char *needle1, const char *needle2)
{
    char *path = strdup(s_write_file("bad.ini", text));
    char *want = NULL;
    assert_true(asprintf(&want, "rt-test: %s:%s", path, needle1) > 0);
    s_opts_t o = {0};
    s_capture_t c;
    s_capture_begin(&c, 2);
    int rc = S_LOAD(&o, "--source", "a", "--config", path);
    char *err = s_capture_end(&c);
    s_expect_error(rc, err, want, needle2);
    s_assert_all_null(&o);
    free(err);
    free(want);
    free(path);
}

static void test_file_errors(void **state)
{
    (void)state;
    s_expect_file_error("# c\nport = 5\nbogus = 1\n", "3: unknown key \"bogus\"", NULL);
    s_expect_file_error("\n\nbatch_bytes = abc\n",
                        "3: key \"batch_bytes\": value \"abc\" is not an integer", NULL);
    s_expect_file_error("port = 70000\n", "1: key \"port\": value \"70000\" is out of range", NULL);
    s_expect_file_error("sync = sometimes\n",
                        "1: key \"sync\": value \"sometimes\" is not a boolean", NULL);
    s_expect_file_error("conflict = merge\n", "1: key \"conflict\": value \"merge\" is not one of",
                        NULL);
    s_expect_file_error("port 5\n", "1: expected \"key = value\"", NULL);
    s_expect_file_error("= 5\n", "1: expected \"key = value\"", NULL);
    s_expect_file_error("bad key = 5\n", "1: expected \"key = value\"", NULL);
    s_expect_file_error("[sect\n", "1: expected \"[section]\"", NULL);
    s_expect_file_error("name = \"open\n", "1: key \"name\": unterminated quoted value", NULL);
    s_expect_file_error("name = \"a\" b\n", "1: key \"name\": unexpected text after", NULL);
    s_expect_file_error("name = \"a\\n\"\n", "1: key \"name\": invalid escape", NULL);

    /* unreadable files */
    char *missing = NULL;
    assert_true(asprintf(&missing, "%s/does-not-exist.ini", s_dir) > 0);
    char *want = NULL;
    assert_true(asprintf(&want, "rt-test: cannot read config file \"%s\": %s", missing,
                         strerror(ENOENT)) > 0);
    S_EXPECT_FLAG_ERROR(want, NULL, "--source", "a", "--config", missing);
    free(want);
    S_EXPECT_FLAG_ERROR("cannot read config file", strerror(EISDIR), "--source", "a", "--config",
                        s_dir);
    free(missing);
}

static void test_help(void **state)
{
    (void)state;
    s_opts_t o = {0};
    s_capture_t c;
    s_capture_begin(&c, 1);
    /* --help wins even when a required option is missing */
    int rc = S_LOAD(&o, "--port", "5", "--help", "--bogus");
    char *out = s_capture_end(&c);
    assert_int_equal(rc, 1);
    s_assert_contains(out, "Usage: rt-test [OPTIONS]\n");
    s_assert_contains(out, "Test program summary.");
    s_assert_contains(out, "--source VALUE");
    s_assert_contains(out, "--config FILE");
    s_assert_contains(out, "--batch-bytes N");
    s_assert_contains(out, "bytes per batch");
    s_assert_contains(out, "(default: 65536)");
    s_assert_contains(out, "(default: /var/lib/rt)");
    s_assert_contains(out, "apply_remote");
    s_assert_contains(out, "--help");
    for (size_t i = 0; i < S_N; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "  --%s ", s_table[i].key);
        s_assert_contains(out, flag);
    }
    free(out);
    s_assert_all_null(&o);

    s_capture_begin(&c, 1);
    rc = S_LOAD(&o, "-h");
    out = s_capture_end(&c);
    assert_int_equal(rc, 1);
    s_assert_contains(out, "Usage: rt-test [OPTIONS]");
    free(out);
}

static void test_load_file_reload(void **state)
{
    (void)state;
    char *first = strdup(s_write_file("reload1.ini", "source = src1\nname = before\nport = 10\n"));
    s_opts_t o = {0};
    assert_int_equal(S_LOAD(&o, "--config", first, "--verbose"), 0);
    assert_string_equal(o.name, "before");

    /* a bad line after good ones: nothing is applied */
    char *bad = strdup(s_write_file("reload2.ini", "name = after\nport = 20\nport = abc\n"));
    char *name_before = o.name;
    s_capture_t c;
    s_capture_begin(&c, 2);
    int rc = rt_config_load_file(s_table, S_N, &o, bad);
    char *err = s_capture_end(&c);
    char *want = NULL;
    assert_true(asprintf(&want, "%s:3: key \"port\": value \"abc\" is not an integer", bad) > 0);
    s_expect_error(rc, err, want, NULL);
    free(want);
    free(err);
    assert_ptr_equal(o.name, name_before);
    assert_string_equal(o.name, "before");
    assert_int_equal(o.port, 10);
    assert_string_equal(o.source, "src1");

    /* unreadable: unchanged too */
    s_capture_begin(&c, 2);
    rc = rt_config_load_file(s_table, S_N, &o, "/nonexistent/rt/reload.ini");
    err = s_capture_end(&c);
    s_expect_error(rc, err, "cannot read config file \"/nonexistent/rt/reload.ini\"", NULL);
    free(err);
    assert_string_equal(o.name, "before");

    /* a good file replaces only the reloadable keys it names; flags are not re-applied;
     * a changed key that is not reloadable is kept and named in a warning */
    char *good = strdup(
        s_write_file("reload3.ini", "name = after\nport = 30\nverbose = off\nsource = src2\n"));
    s_capture_begin(&c, 2);
    rc = rt_config_load_file(s_table, S_N, &o, good);
    err = s_capture_end(&c);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "source changed; the new value applies at the next start"));
    assert_null(strstr(err, "name changed"));
    free(err);
    assert_string_equal(o.name, "after");
    assert_int_equal(o.port, 30);
    assert_false(o.verbose);
    assert_string_equal(o.source, "src1");
    assert_string_equal(o.config, first);

    rt_config_free(s_table, S_N, &o);
    s_assert_all_null(&o);
    free(first);
    free(bad);
    free(good);
}

static void test_bad_default(void **state)
{
    (void)state;
    static const rt_cfg_param_t table[] = {
        {"level", RT_CFG_INT, 0, "ten", 0, 0, NULL, false, "a broken default", false},
    };
    int64_t level = 0;
    char *av[] = {S_PROG};
    s_capture_t c;
    s_capture_begin(&c, 2);
    int rc = rt_config_load(table, 1, &level, 1, av, S_PROG, NULL);
    char *err = s_capture_end(&c);
    s_expect_error(rc, err, "--level", "\"ten\" is not an integer");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_flags_separate_value),
        cmocka_unit_test(test_flags_equals_value), cmocka_unit_test(test_bare_bool_and_repeats),
        cmocka_unit_test(test_ini_file),           cmocka_unit_test(test_flags_override_file),
        cmocka_unit_test(test_flag_errors),        cmocka_unit_test(test_bounds_inclusive),
        cmocka_unit_test(test_file_errors),        cmocka_unit_test(test_help),
        cmocka_unit_test(test_load_file_reload),   cmocka_unit_test(test_bad_default),
    };
    return cmocka_run_group_tests(tests, s_setup_group, s_teardown_group);
}
