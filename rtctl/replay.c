/* rtctl/replay.c - rtctl replay: re-send a range of the outbox to one subscriber. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* Seconds from the Unix epoch to the PostgreSQL epoch (2000-01-01 UTC). */
#define S_PG_EPOCH_UNIX 946684800LL

/* Parses "YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z| UTC]" (UTC) or "@SECONDS[.fraction]"
 * (Unix time) into PostgreSQL-epoch microseconds. */
static bool s_parse_time(const char *text, int64_t *pg_us)
{
    double frac = 0;
    int64_t secs;
    const char *rest;
    if (text[0] == '@') {
        char *end;
        errno = 0;
        double v = strtod(text + 1, &end);
        if (errno || end == text + 1 || *end || v < 0 || v > 1e11)
            return false;
        secs = (int64_t)v;
        frac = v - (double)secs;
    } else {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        rest = strptime(text, "%Y-%m-%d", &tm);
        if (!rest || (*rest != ' ' && *rest != 'T'))
            return false;
        rest = strptime(rest + 1, "%H:%M:%S", &tm);
        if (!rest)
            return false;
        if (*rest == '.') {
            char *end;
            frac = strtod(rest, &end);
            rest = end;
        }
        while (*rest == ' ')
            rest++;
        if (*rest && strcmp(rest, "Z") != 0 && strcmp(rest, "UTC") != 0 &&
            strcmp(rest, "+00") != 0 && strcmp(rest, "+00:00") != 0)
            return false;
        secs = (int64_t)timegm(&tm);
    }
    *pg_us = (secs - S_PG_EPOCH_UNIX) * 1000000 + (int64_t)(frac * 1e6);
    return true;
}

int rt_ctl_cmd_replay(const rt_ctl_t *g, int argc, char **argv)
{
    const char *name = NULL;
    uint64_t from = 0, to = 0, flags = 0;
    int64_t since = 0;
    bool has_from = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--dry-run") == 0) {
            flags |= RT_REPLAY_DRY_RUN;
        } else if (strcmp(a, "--reset") == 0) {
            flags |= RT_REPLAY_RESET;
        } else if (strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0 ||
                   strcmp(a, "--since") == 0) {
            if (!has_value) {
                fprintf(stderr, "rtctl replay: %s needs a value\n", a);
                return RT_EXIT_USAGE;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--since") == 0) {
                if (!s_parse_time(v, &since)) {
                    fprintf(stderr,
                            "rtctl replay: --since: \"%s\" is not a time "
                            "('YYYY-MM-DD HH:MM:SS[.fff]' in UTC, or @UNIX_SECONDS)\n",
                            v);
                    return RT_EXIT_USAGE;
                }
                flags |= RT_REPLAY_SINCE;
            } else if (!rt_ctl_parse_u64("replay", a, v, strcmp(a, "--from") == 0 ? &from : &to)) {
                return RT_EXIT_USAGE;
            } else if (strcmp(a, "--from") == 0) {
                has_from = true;
                if (from == 0) {
                    fprintf(stderr, "rtctl replay: --from: seqs start at 1\n");
                    return RT_EXIT_USAGE;
                }
            } else if (to == 0) {
                fprintf(stderr, "rtctl replay: --to: seqs start at 1\n");
                return RT_EXIT_USAGE;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "rtctl replay: unknown option \"%s\" (see rtctl replay --help)\n", a);
            return RT_EXIT_USAGE;
        } else if (name) {
            fprintf(stderr, "rtctl replay: one subscriber NAME only (got \"%s\" and \"%s\")\n",
                    name, a);
            return RT_EXIT_USAGE;
        } else {
            name = a;
        }
    }
    if (!name) {
        fprintf(stderr, "rtctl replay: missing subscriber NAME (see rtctl replay --help)\n");
        return RT_EXIT_USAGE;
    }
    if (strlen(name) > 127) {
        fprintf(stderr, "rtctl replay: subscriber name \"%.40s...\" is longer than 127 bytes\n",
                name);
        return RT_EXIT_USAGE;
    }
    if (has_from && (flags & RT_REPLAY_SINCE)) {
        fprintf(stderr, "rtctl replay: --from and --since exclude each other\n");
        return RT_EXIT_USAGE;
    }
    if (has_from && to && to < from) {
        fprintf(stderr, "rtctl replay: --to %llu is before --from %llu\n", (unsigned long long)to,
                (unsigned long long)from);
        return RT_EXIT_USAGE;
    }
    rt_msg_t m = {.type = RT_MSG_REPLAY,
                  .name = (char *)name,
                  .seq = from,
                  .last_seq = to,
                  .commit_ts = since,
                  .flags = flags};
    return rt_ctl_call_ok(g, &m);
}
