/* rtctl/main.c - rtctl: the operator's tool (git-style commands, named exit codes). */
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "curve.h"
#include "log.h"
#include "sock.h"

typedef struct {
    const char *word;  /* the command */
    rt_ctl_cmd_fn fn;  /* runs it */
    const char *usage; /* its arguments */
    const char *help;  /* what it does, one or more lines */
} s_cmd_t;

static const s_cmd_t s_cmds[] = {
    {"status", rt_ctl_cmd_status, "status [--json]",
     "publisher capture state, outbox head/size/oldest record, and per subscriber: state\n"
     "(streaming, catching-up, paused, error, offline, copying), applied seq, lag in\n"
     "records, bytes and seconds, conflicts and last error"},
    {"top", rt_ctl_cmd_top, "top [--once] [--interval MS]",
     "live view, refreshed every second (or MS): capture txns/s and rows/s, a 60 s\n"
     "sparkline, per-subscriber apply rate and lag, outbox depth. Keys: p N pause\n"
     "subscriber N, r N resume it, q quit. --once prints one frame (two status replies\n"
     "an interval apart, for the rates) and exits"},
    {"pause", rt_ctl_cmd_pause, "pause NAME",
     "stop sending subscriber NAME anything new (it applies nothing until resumed);\n"
     "stored in the outbox, so it survives restarts; a paused subscriber does not hold\n"
     "back trimming"},
    {"resume", rt_ctl_cmd_resume, "resume NAME", "undo pause: NAME catches up"},
    {"forget", rt_ctl_cmd_forget, "forget NAME [--force]",
     "deregister subscriber NAME so the outbox can be trimmed past it; refused while it\n"
     "is connected and not paused, unless --force"},
    {"resync", rt_ctl_cmd_resync, "resync NAME [--table SCHEMA.TABLE]...",
     "subscriber NAME copies every published table again under a new snapshot (its\n"
     "tables are emptied and reloaded), then streams from there: the way back for a\n"
     "replica whose records were trimmed. At once if it is connected, else when it\n"
     "connects next (the request is stored). With --table, only those tables, while the\n"
     "others go on streaming (NAME must be running)"},
    {"skip", rt_ctl_cmd_skip, "skip NAME --seq N",
     "subscriber NAME steps over the schema changes (DDL) of record N, the one it stopped\n"
     "at, and applies its rows: for a DDL you made on the replica by hand. Logged, and\n"
     "recorded in the replica's rt.conflicts (kind ddl_skipped). NAME must be running"},
    {"replay", rt_ctl_cmd_replay,
     "replay NAME [--from SEQ | --since TIME] [--to SEQ] [--dry-run] [--reset]",
     "send seqs SEQ..TO of the outbox (default: all it holds) to subscriber NAME;\n"
     "records it already applied are skipped (exactly once). --since TIME starts at the\n"
     "first record committed at or after TIME ('YYYY-MM-DD HH:MM:SS[.fff]' UTC, or\n"
     "@UNIX_SECONDS). --reset first moves NAME's progress back to SEQ - 1 and re-applies\n"
     "the range with conflict policy apply_remote (a replica restored from a backup).\n"
     "--dry-run prints how many records, transactions and rows would go"},
    {"outbox", rt_ctl_cmd_outbox, "outbox inspect DIR [--seq N]",
     "offline: records, size, seq and LSN ranges, subscribers, and one record decoded\n"
     "(default: the newest). Opens the outbox read-only: safe while a publisher runs"},
    {"ping", rt_ctl_cmd_ping, "ping [ENDPOINT]", "connection test with round-trip time"},
    {"keygen", rt_ctl_cmd_keygen, "keygen NAME [--dir DIR]",
     "offline: write a CURVE key pair for NAME (a publisher, a subscriber or an operator):\n"
     "DIR/NAME.cert, the public certificate (metadata name=NAME) to copy to its peers, and\n"
     "DIR/NAME.cert_secret (mode 0600) to keep where NAME runs. DIR defaults to ."},
};

#define S_NCMDS (sizeof s_cmds / sizeof s_cmds[0])

static void s_usage(FILE *out)
{
    fprintf(out,
            "Usage: rtctl [--publisher ENDPOINT] [--timeout MS]\n"
            "             [--cert SECRET_FILE --publisher-key CERT_FILE] [--insecure]\n"
            "             COMMAND [ARGS]\n"
            "       rtctl COMMAND --help\n\n"
            "Options:\n"
            "  --publisher ENDPOINT       the publisher's ROUTER (default " RT_CTL_DEFAULT_ENDPOINT
            "); status\n"
            "                             takes several (the nodes of a mesh; with CURVE one\n"
            "                             --publisher-key each, in the same order)\n"
            "  --timeout MS               how long to wait for an answer (default 5000)\n"
            "  --cert SECRET_FILE         CURVE: rtctl's secret certificate\n"
            "  --publisher-key CERT_FILE  CURVE: the publisher's public certificate\n"
            "  --insecure                 talk to a publisher on another host without "
            "CURVE\n"
            "  --version                  print the version and git revision, and exit\n\n"
            "Commands:\n");
    for (size_t i = 0; i < S_NCMDS; i++) {
        fprintf(out, "  %s\n      ", s_cmds[i].usage);
        for (const char *p = s_cmds[i].help; *p; p++) {
            fputc(*p, out);
            if (*p == '\n')
                fputs("      ", out);
        }
        fputc('\n', out);
    }
    fprintf(out, "\nExit codes:\n"
                 "  0  ok\n"
                 "  1  failure: no answer, an error reply (unknown subscriber, trimmed range,\n"
                 "     refused), an unreadable outbox\n"
                 "  2  usage error: unknown command or option, bad or missing argument\n");
}

void rt_ctl_command_usage(FILE *out, const char *word)
{
    for (size_t i = 0; i < S_NCMDS; i++) {
        if (strcmp(s_cmds[i].word, word) != 0)
            continue;
        fprintf(out,
                "Usage: rtctl [OPTIONS] %s\n\n%s\n\n"
                "Exit codes: 0 ok, 1 failure, 2 usage error.\n",
                s_cmds[i].usage, s_cmds[i].help);
        return;
    }
}

/* Takes the value of option name at argv[*i] ("--name VALUE" or "--name=VALUE") into
 * *value; false when argv[*i] is not that option. */
static bool s_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strcmp(argv[*i], name) == 0 && *i + 1 < argc) {
        *value = argv[++*i];
        return true;
    }
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return true;
    }
    return false;
}

/* Loads the CURVE keys, or checks that a plaintext endpoint stays on this host.
 * RT_EXIT_OK or RT_EXIT_USAGE (printed). */
static int s_security(rt_ctl_t *g, const char *cert, const char *publisher_key, bool insecure,
                      char key[RT_CURVE_KEY_LEN])
{
    if (!cert != !publisher_key) {
        fprintf(stderr, "rtctl: --cert and --publisher-key go together (CURVE)\n");
        return RT_EXIT_USAGE;
    }
    if (cert) {
        if (!(g->cert = rt_curve_load_secret(cert)) ||
            rt_curve_load_public(publisher_key, key) != RT_OK)
            return RT_EXIT_USAGE;
        g->publisher_key = key;
        return RT_EXIT_OK;
    }
    if (!insecure && !rt_sock_endpoint_local(g->endpoint)) {
        fprintf(stderr,
                "rtctl: %s is on another host: give --cert and --publisher-key (CURVE), "
                "or --insecure\n",
                g->endpoint);
        return RT_EXIT_USAGE;
    }
    return RT_EXIT_OK;
}

int main(int argc, char **argv)
{
    rt_ctl_t g = {RT_CTL_DEFAULT_ENDPOINT, RT_CTL_DEFAULT_TIMEOUT_MS, NULL, NULL, 0, NULL, NULL};
    const char *cert = NULL, *publisher_key = NULL, *timeout = NULL, *opt = NULL;
    const char *endpoints[RT_CTL_MAX_PUBLISHERS], *pkeys[RT_CTL_MAX_PUBLISHERS];
    int nend = 0, npkeys = 0;
    bool insecure = false;
    char keys[RT_CTL_MAX_PUBLISHERS][RT_CURVE_KEY_LEN];
    zsys_handler_set(NULL);
    rt_log_init("rtctl", RT_LOG_WARN);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return RT_EXIT_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("rtctl %s\n", rt_version_text);
            return RT_EXIT_OK;
        } else if (s_opt(argc, argv, &i, "--publisher", &opt) ||
                   s_opt(argc, argv, &i, "--publisher-key", &publisher_key)) {
            bool is_key = opt == NULL;
            if ((is_key ? npkeys : nend) == RT_CTL_MAX_PUBLISHERS) {
                fprintf(stderr, "rtctl: %s given more than %d times\n",
                        is_key ? "--publisher-key" : "--publisher", RT_CTL_MAX_PUBLISHERS);
                return RT_EXIT_USAGE;
            }
            if (is_key)
                pkeys[npkeys++] = publisher_key;
            else
                endpoints[nend++] = opt;
            opt = NULL;
            continue;
        } else if (s_opt(argc, argv, &i, "--cert", &cert)) {
            continue;
        } else if (s_opt(argc, argv, &i, "--timeout", &timeout)) {
            char *end;
            long v = strtol(timeout, &end, 10);
            if (*end || v <= 0 || v > 3600000) {
                fprintf(stderr,
                        "rtctl: --timeout: value \"%s\" is not a number of ms "
                        "(1..3600000)\n",
                        timeout);
                return RT_EXIT_USAGE;
            }
            g.timeout_ms = (int)v;
        } else if (strcmp(a, "--insecure") == 0) {
            insecure = true;
        } else {
            fprintf(stderr, "rtctl: unknown or incomplete option \"%s\" (see rtctl --help)\n", a);
            return RT_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        s_usage(stderr);
        return RT_EXIT_USAGE;
    }
    for (size_t c = 0; c < S_NCMDS; c++) {
        if (strcmp(argv[i], s_cmds[c].word) != 0)
            continue;
        for (int j = i + 1; j < argc; j++) {
            if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
                rt_ctl_command_usage(stdout, s_cmds[c].word);
                return RT_EXIT_OK;
            }
        }
        if (nend > 1 && strcmp(s_cmds[c].word, "status") != 0) {
            fprintf(stderr, "rtctl: several --publisher are for status only; %s takes one\n",
                    s_cmds[c].word);
            return RT_EXIT_USAGE;
        }
        if (npkeys > 1 && npkeys != nend) {
            fprintf(stderr,
                    "rtctl: %d --publisher-key for %d --publisher: give one key per publisher, "
                    "in the same order\n",
                    npkeys, nend);
            return RT_EXIT_USAGE;
        }
        if (nend == 0)
            endpoints[nend++] = RT_CTL_DEFAULT_ENDPOINT;
        int code = RT_EXIT_OK;
        const char *loaded[RT_CTL_MAX_PUBLISHERS];
        for (int k = 0; k < nend && code == RT_EXIT_OK; k++) {
            rt_ctl_t one = g;
            one.endpoint = endpoints[k];
            code = s_security(&one, cert, npkeys ? pkeys[npkeys > 1 ? k : 0] : NULL, insecure,
                              keys[k]);
            loaded[k] = one.publisher_key;
            if (k == 0)
                g.cert = one.cert;
            else
                zcert_destroy(&one.cert);
        }
        g.endpoint = endpoints[0];
        g.publisher_key = loaded[0];
        g.nendpoints = nend;
        g.endpoints = endpoints;
        g.publisher_keys = loaded;
        if (code == RT_EXIT_OK)
            code = s_cmds[c].fn(&g, argc - i, argv + i);
        zcert_destroy(&g.cert);
        return code;
    }
    fprintf(stderr, "rtctl: unknown command \"%s\" (see rtctl --help)\n", argv[i]);
    return RT_EXIT_USAGE;
}
