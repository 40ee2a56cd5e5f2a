/* rtctl/main.c - rtctl: the operator's tool (git-style commands, named exit codes). */
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "rt.h"
#include "wire.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7470"

typedef struct {
    const char *endpoint; /* publisher ROUTER */
    int timeout_ms;       /* how long to wait for an answer */
} s_global_t;

typedef int (*s_cmd_fn)(const s_global_t *g, int argc, char **argv);

typedef struct {
    const char *word;
    s_cmd_fn fn;
    const char *usage;
    const char *help;
} s_cmd_t;

/* Sends msg and returns the reply, printing what went wrong on failure. */
static int s_call(const s_global_t *g, const rt_msg_t *msg, void **reply, size_t *len)
{
    rt_client_t *c = rt_client_new(g->endpoint);
    if (!c)
        return RT_EXIT_FAILURE;
    int rc = rt_client_call(c, msg, g->timeout_ms, reply, len);
    rt_client_destroy(&c);
    if (rc == RT_EAGAIN) {
        fprintf(stderr, "rtctl: no answer from the publisher at %s within %d ms\n",
                g->endpoint, g->timeout_ms);
        return RT_EXIT_FAILURE;
    }
    if (rc < 0) {
        fprintf(stderr, "rtctl: talking to %s failed: %s\n", g->endpoint, rt_strerror(rc));
        return RT_EXIT_FAILURE;
    }
    if (rt_msg_peek_type(*reply, *len) == RT_MSG_ERROR) {
        rt_msg_t e;
        if (rt_msg_decode(*reply, *len, &e) == 0) {
            fprintf(stderr, "rtctl: the publisher answered: %s\n", e.text);
            rt_msg_clear(&e);
        }
        free(*reply);
        return RT_EXIT_FAILURE;
    }
    return RT_EXIT_OK;
}

static int s_cmd_ping(const s_global_t *g0, int argc, char **argv)
{
    s_global_t g = *g0;
    if (argc > 2) {
        fprintf(stderr, "rtctl ping: too many arguments\n");
        return RT_EXIT_USAGE;
    }
    if (argc == 2)
        g.endpoint = argv[1];
    rt_msg_t ping = {.type = RT_MSG_PING};
    void *reply;
    size_t len;
    int64_t t0 = zclock_usecs();
    int rc = s_call(&g, &ping, &reply, &len);
    if (rc != RT_EXIT_OK)
        return rc;
    int64_t rtt = zclock_usecs() - t0;
    rt_msg_t pong;
    if (rt_msg_decode(reply, len, &pong) < 0 || pong.type != RT_MSG_PONG) {
        fprintf(stderr, "rtctl: %s answered PING with something that is not a PONG\n",
                g.endpoint);
        free(reply);
        return RT_EXIT_FAILURE;
    }
    printf("PONG from %s: source %s, head seq %" PRIu64 ", round trip %.3f ms\n", g.endpoint,
           pong.source, pong.head_seq, rtt / 1000.0);
    rt_msg_clear(&pong);
    free(reply);
    return RT_EXIT_OK;
}

static void s_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void s_print_json(const rt_status_t *st)
{
    char r[32], c[32];
    printf("{\"source\":");
    s_json_string(st->source);
    printf(",\"slot\":");
    s_json_string(st->slot);
    printf(",\"first_seq\":%" PRIu64 ",\"head_seq\":%" PRIu64 ",\"records\":%" PRIu64
           ",\"outbox_bytes\":%" PRIu64 ",\"received_lsn\":\"%s\",\"confirmed_lsn\":\"%s\""
           ",\"captured_txns\":%" PRIu64 ",\"captured_rows\":%" PRIu64 ",\"subscribers\":[",
           st->first_seq, st->head_seq, st->records, st->outbox_bytes,
           rt_lsn_format(st->received_lsn, r, sizeof r),
           rt_lsn_format(st->confirmed_lsn, c, sizeof c), st->captured_txns, st->captured_rows);
    for (uint32_t i = 0; i < st->nsubs; i++) {
        const rt_status_sub_t *s = &st->subs[i];
        printf("%s{\"name\":", i ? "," : "");
        s_json_string(s->name);
        printf(",\"state\":\"%s\",\"acked_seq\":%" PRIu64 ",\"lag_records\":%" PRIu64
               ",\"seen_ms_ago\":%" PRId64 "}",
               rt_sub_state_name((int)s->state), s->acked_seq,
               st->head_seq > s->acked_seq ? st->head_seq - s->acked_seq : 0, s->seen_ms_ago);
    }
    printf("]}\n");
}

static void s_print_text(const rt_status_t *st)
{
    char r[32], c[32];
    printf("publisher %s (slot %s)\n", st->source, st->slot);
    printf("  outbox: head seq %" PRIu64 ", first seq %" PRIu64 ", %" PRIu64
           " records, %.1f MiB\n",
           st->head_seq, st->first_seq, st->records, st->outbox_bytes / 1048576.0);
    printf("  source: received %s, confirmed %s\n", rt_lsn_format(st->received_lsn, r, sizeof r),
           rt_lsn_format(st->confirmed_lsn, c, sizeof c));
    printf("  captured since start: %" PRIu64 " transactions, %" PRIu64 " rows\n",
           st->captured_txns, st->captured_rows);
    printf("subscribers: %u\n", st->nsubs);
    if (st->nsubs)
        printf("  %-24s %-12s %12s %12s %10s\n", "NAME", "STATE", "ACKED SEQ", "LAG (recs)",
               "SEEN");
    for (uint32_t i = 0; i < st->nsubs; i++) {
        const rt_status_sub_t *s = &st->subs[i];
        char seen[32];
        if (s->seen_ms_ago < 0)
            snprintf(seen, sizeof seen, "never");
        else
            snprintf(seen, sizeof seen, "%.1fs ago", s->seen_ms_ago / 1000.0);
        printf("  %-24s %-12s %12" PRIu64 " %12" PRIu64 " %10s\n", s->name,
               rt_sub_state_name((int)s->state), s->acked_seq,
               st->head_seq > s->acked_seq ? st->head_seq - s->acked_seq : 0, seen);
    }
}

static int s_cmd_status(const s_global_t *g, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "rtctl status: unknown option \"%s\"\n", argv[i]);
            return RT_EXIT_USAGE;
        }
    }
    rt_msg_t req = {.type = RT_MSG_STATUS};
    void *reply;
    size_t len;
    int rc = s_call(g, &req, &reply, &len);
    if (rc != RT_EXIT_OK)
        return rc;
    rt_status_t st;
    if (rt_status_decode(reply, len, &st) < 0) {
        fprintf(stderr, "rtctl: malformed STATUS_REPLY from %s\n", g->endpoint);
        free(reply);
        return RT_EXIT_FAILURE;
    }
    free(reply);
    if (json)
        s_print_json(&st);
    else
        s_print_text(&st);
    rt_status_clear(&st);
    return RT_EXIT_OK;
}

static const s_cmd_t s_cmds[] = {
    {"status", s_cmd_status, "status [--json]",
     "publisher head, slot LSNs, outbox size, each subscriber's acked seq, state and lag"},
    {"ping", s_cmd_ping, "ping [ENDPOINT]", "connection test with round-trip time"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "Usage: rtctl [--publisher ENDPOINT] [--timeout MS] COMMAND [ARGS]\n\n"
                 "Options:\n"
                 "  --publisher ENDPOINT  the publisher's ROUTER (default " DEFAULT_ENDPOINT ")\n"
                 "  --timeout MS          how long to wait for an answer (default 5000)\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(out, "  %-22s %s\n", s_cmds[i].usage, s_cmds[i].help);
    fprintf(out, "\nExit codes: 0 ok, 1 failure (no answer, error reply), 2 usage error.\n");
}

int main(int argc, char **argv)
{
    s_global_t g = {DEFAULT_ENDPOINT, 5000};
    zsys_handler_set(NULL);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return RT_EXIT_OK;
        } else if (strcmp(a, "--publisher") == 0 && i + 1 < argc) {
            g.endpoint = argv[++i];
        } else if (strncmp(a, "--publisher=", 12) == 0) {
            g.endpoint = a + 12;
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0 || v > 3600000) {
                fprintf(stderr, "rtctl: --timeout: value \"%s\" is not a number of ms\n",
                        argv[i]);
                return RT_EXIT_USAGE;
            }
            g.timeout_ms = (int)v;
        } else {
            fprintf(stderr, "rtctl: unknown or incomplete option \"%s\"\n", a);
            return RT_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        s_usage(stderr);
        return RT_EXIT_USAGE;
    }
    for (size_t c = 0; c < sizeof s_cmds / sizeof s_cmds[0]; c++) {
        if (strcmp(argv[i], s_cmds[c].word) != 0)
            continue;
        if (i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0)) {
            printf("Usage: rtctl [--publisher ENDPOINT] %s\n  %s\n", s_cmds[c].usage,
                   s_cmds[c].help);
            return RT_EXIT_OK;
        }
        return s_cmds[c].fn(&g, argc - i, argv + i);
    }
    fprintf(stderr, "rtctl: unknown command \"%s\" (see rtctl --help)\n", argv[i]);
    return RT_EXIT_USAGE;
}
