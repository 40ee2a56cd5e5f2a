/* tests/fuzz/fuzz_config.c - libFuzzer target for the INI config file parser (rt_config_load_file).
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    char *source;
    char *endpoint;
    int64_t batch_bytes; /* [1, 1 GiB] */
    int64_t lag_ms;      /* [-1000, 1000] */
    int64_t port;        /* unbounded */
    bool verbose;
    bool sync;
    int64_t mode; /* index into s_modes */
} s_opts_t;

static const char *const s_modes[] = {"streaming", "catching-up", "paused", NULL};

#define S_OFF(m) offsetof(s_opts_t, m)

static const rt_cfg_param_t s_table[] = {
    {"source", RT_CFG_STR, S_OFF(source), "main", 0, 0, NULL, true, "source name", true},
    {"endpoint", RT_CFG_STR, S_OFF(endpoint), NULL, 0, 0, NULL, false, "endpoint", true},
    {"batch-bytes", RT_CFG_INT, S_OFF(batch_bytes), "65536", 1, 1 << 30, NULL, false, "batch",
     true},
    {"lag-ms", RT_CFG_INT, S_OFF(lag_ms), "0", -1000, 1000, NULL, false, "lag", true},
    {"port", RT_CFG_INT, S_OFF(port), NULL, 0, 0, NULL, false, "port", true},
    {"verbose", RT_CFG_BOOL, S_OFF(verbose), "false", 0, 0, NULL, false, "verbose", true},
    {"sync", RT_CFG_BOOL, S_OFF(sync), NULL, 0, 0, NULL, false, "sync", true},
    {"mode", RT_CFG_ENUM, S_OFF(mode), "streaming", 0, 0, s_modes, false, "mode", true},
};

#define S_NPARAMS (sizeof s_table / sizeof s_table[0])

/* Values the options hold before each load, to tell what the file changed. */
#define S_PRESET_INT (-77)
#define S_PRESET_MODE 1

static char s_path[] = "/tmp/rt-fuzz-config-XXXXXX";
static int s_fd = -1;

static void s_cleanup(void)
{
    if (s_fd >= 0) {
        close(s_fd);
        unlink(s_path);
        s_fd = -1;
    }
}

/*
 * The parser reports errors through the log on stderr. Silence them by sending stderr to
 * /dev/null with libFuzzer's own -close_fd_mask=2, which keeps libFuzzer's messages and
 * sanitizer reports on a duplicate of the original stderr. It goes first among the flags,
 * so a -close_fd_mask given on the command line still wins.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char flag[] = "-close_fd_mask=2";
    char **nargv = calloc((size_t)*argc + 2, sizeof *nargv);
    if (!nargv)
        abort();
    nargv[0] = (*argv)[0];
    nargv[1] = flag;
    for (int i = 1; i < *argc; i++)
        nargv[i + 1] = (*argv)[i];
    *argc += 1;
    *argv = nargv;

    s_fd = mkstemp(s_path);
    if (s_fd < 0) {
        perror("mkstemp");
        abort();
    }
    atexit(s_cleanup);
    return 0;
}

static void s_preset(s_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->source = strdup("preset");
    if (!o->source)
        abort();
    o->batch_bytes = o->lag_ms = o->port = S_PRESET_INT;
    o->verbose = true;
    o->mode = S_PRESET_MODE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_opts_t o;

    if (s_fd < 0)
        abort();
    if (ftruncate(s_fd, 0) != 0 || pwrite(s_fd, data, size, 0) != (ssize_t)size)
        abort();
    s_preset(&o);
    int rc = rt_config_load_file(s_table, S_NPARAMS, &o, s_path);
    if (rc == 0) {
        if (!o.source)
            abort();
        (void)strlen(o.source);
        if (o.endpoint)
            (void)strlen(o.endpoint);
        if (o.batch_bytes != S_PRESET_INT && (o.batch_bytes < 1 || o.batch_bytes > (1 << 30)))
            abort();
        if (o.lag_ms != S_PRESET_INT && (o.lag_ms < -1000 || o.lag_ms > 1000))
            abort();
        if (o.mode < 0 || o.mode > 2)
            abort();
    } else {
        /* A file that does not load changes nothing. */
        if (rc != RT_EINVAL && rc != RT_ENOMEM)
            abort();
        if (!o.source || strcmp(o.source, "preset") != 0 || o.endpoint ||
            o.batch_bytes != S_PRESET_INT || o.lag_ms != S_PRESET_INT || o.port != S_PRESET_INT ||
            !o.verbose || o.sync || o.mode != S_PRESET_MODE)
            abort();
    }
    rt_config_free(s_table, S_NPARAMS, &o);
    if (o.source || o.endpoint)
        abort();
    return 0;
}
