/* rtctl/admin.c - rtctl pause, resume and forget: a subscriber's registration. */
#include <string.h>

#include "buf.h"
#include "ctl.h"

/* A subscriber name as the publisher stores it: 1..127 bytes, no control characters. */
static bool s_name_ok(const char *cmd, const char *name)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= 127;
    for (size_t i = 0; ok && i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            ok = false;
    if (!ok)
        fprintf(stderr, "rtctl %s: \"%s\" is not a subscriber name (1 to 127 printable bytes)\n",
                cmd, name);
    return ok;
}

static int s_pause_resume(const rt_ctl_t *g, int argc, char **argv, int type)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "rtctl %s: expected one subscriber NAME (usage: rtctl %s NAME)\n", argv[0],
                argv[0]);
        return RT_EXIT_USAGE;
    }
    if (!s_name_ok(argv[0], argv[1]))
        return RT_EXIT_USAGE;
    rt_msg_t m = {.type = type, .name = argv[1]};
    return rt_ctl_call_ok(g, &m);
}

int rt_ctl_cmd_pause(const rt_ctl_t *g, int argc, char **argv)
{
    return s_pause_resume(g, argc, argv, RT_MSG_PAUSE);
}

int rt_ctl_cmd_resume(const rt_ctl_t *g, int argc, char **argv)
{
    return s_pause_resume(g, argc, argv, RT_MSG_RESUME);
}

int rt_ctl_cmd_forget(const rt_ctl_t *g, int argc, char **argv)
{
    const char *name = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "rtctl forget: unknown option \"%s\" (usage: rtctl forget NAME "
                    "[--force])\n",
                    argv[i]);
            return RT_EXIT_USAGE;
        } else if (name) {
            fprintf(stderr, "rtctl forget: one subscriber NAME only (got \"%s\" and \"%s\")\n",
                    name, argv[i]);
            return RT_EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "rtctl forget: missing subscriber NAME (usage: rtctl forget NAME "
                        "[--force])\n");
        return RT_EXIT_USAGE;
    }
    if (!s_name_ok("forget", name))
        return RT_EXIT_USAGE;
    rt_msg_t m = {
        .type = RT_MSG_FORGET, .name = (char *)name, .flags = force ? RT_FORGET_FORCE : 0};
    return rt_ctl_call_ok(g, &m);
}

int rt_ctl_cmd_resync(const rt_ctl_t *g, int argc, char **argv)
{
    const char *name = NULL;
    rt_buf_t tables = {0};
    int rc = RT_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--table") == 0 && i + 1 < argc) {
            const char *t = argv[++i], *dot = strchr(t, '.');
            if (!dot || dot == t || !dot[1] || strchr(t, '\n')) {
                fprintf(stderr,
                        "rtctl resync: --table \"%s\" is not SCHEMA.TABLE (e.g. public.orders)\n",
                        t);
                goto cleanup;
            }
            rt_buf_printf(&tables, "%s%s", tables.len ? "\n" : "", t);
        } else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "rtctl resync: unknown option \"%s\" (usage: rtctl resync NAME "
                    "[--table SCHEMA.TABLE]...)\n",
                    argv[i]);
            goto cleanup;
        } else if (name) {
            fprintf(stderr, "rtctl resync: one subscriber NAME only (got \"%s\" and \"%s\")\n",
                    name, argv[i]);
            goto cleanup;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "rtctl resync: missing subscriber NAME (usage: rtctl resync NAME)\n");
        goto cleanup;
    }
    if (!s_name_ok("resync", name))
        goto cleanup;
    rt_msg_t m = {.type = RT_MSG_RESYNC,
                  .name = (char *)name,
                  .text = (char *)(tables.len ? rt_buf_str(&tables) : "")};
    rc = rt_ctl_call_ok(g, &m);
cleanup:
    rt_buf_free(&tables);
    return rc;
}

int rt_ctl_cmd_skip(const rt_ctl_t *g, int argc, char **argv)
{
    const char *name = NULL;
    uint64_t seq = 0;
    bool have_seq = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seq") == 0 && i + 1 < argc) {
            if (!rt_ctl_parse_u64("skip", "--seq", argv[++i], &seq))
                return RT_EXIT_USAGE;
            have_seq = true;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "rtctl skip: unexpected \"%s\" (usage: rtctl skip NAME --seq N)\n",
                    argv[i]);
            return RT_EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    if (!name || !have_seq || seq == 0) {
        fprintf(stderr, "rtctl skip: %s (usage: rtctl skip NAME --seq N)\n",
                !name ? "missing subscriber NAME" : "missing --seq N (seqs start at 1)");
        return RT_EXIT_USAGE;
    }
    if (!s_name_ok("skip", name))
        return RT_EXIT_USAGE;
    rt_msg_t m = {.type = RT_MSG_SKIP, .name = (char *)name, .seq = seq};
    return rt_ctl_call_ok(g, &m);
}
