/* rtctl/status.c - rtctl status and ping, and the request helpers every command uses. */
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "ctl.h"
#include "status_json.h"

int rt_ctl_call(const rt_ctl_t *g, const rt_msg_t *msg, void **reply, size_t *len)
{
    rt_client_t *c = rt_client_new(g->endpoint);
    if (!c)
        return RT_EXIT_FAILURE;
    int rc = rt_client_call(c, msg, g->timeout_ms, reply, len);
    rt_client_destroy(&c);
    if (rc == RT_EAGAIN) {
        fprintf(stderr, "rtctl: no answer from the publisher at %s within %d ms\n", g->endpoint,
                g->timeout_ms);
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
        } else {
            fprintf(stderr, "rtctl: the publisher at %s answered with a malformed ERROR\n",
                    g->endpoint);
        }
        free(*reply);
        *reply = NULL;
        return RT_EXIT_FAILURE;
    }
    return RT_EXIT_OK;
}

int rt_ctl_call_ok(const rt_ctl_t *g, const rt_msg_t *msg)
{
    void *reply;
    size_t len;
    int rc = rt_ctl_call(g, msg, &reply, &len);
    if (rc != RT_EXIT_OK)
        return rc;
    rt_msg_t ok;
    if (rt_msg_decode(reply, len, &ok) < 0 || ok.type != RT_MSG_OK) {
        fprintf(stderr, "rtctl: %s answered with something that is not OK or ERROR\n",
                g->endpoint);
        if (ok.type)
            rt_msg_clear(&ok);
        free(reply);
        return RT_EXIT_FAILURE;
    }
    printf("%s\n", ok.text);
    rt_msg_clear(&ok);
    free(reply);
    return RT_EXIT_OK;
}

int rt_ctl_status_fetch(const rt_ctl_t *g, rt_status_t *st)
{
    rt_msg_t req = {.type = RT_MSG_STATUS};
    void *reply;
    size_t len;
    memset(st, 0, sizeof *st);
    int rc = rt_ctl_call(g, &req, &reply, &len);
    if (rc != RT_EXIT_OK)
        return rc;
    rc = rt_status_decode(reply, len, st);
    free(reply);
    if (rc < 0) {
        fprintf(stderr, "rtctl: malformed STATUS_REPLY from %s\n", g->endpoint);
        return RT_EXIT_FAILURE;
    }
    return RT_EXIT_OK;
}

bool rt_ctl_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t *v)
{
    char *end;
    errno = 0;
    if (!text || !*text || *text == '-') {
        fprintf(stderr, "rtctl %s: %s: \"%s\" is not a non-negative number\n", cmd, opt,
                text ? text : "");
        return false;
    }
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "rtctl %s: %s: \"%s\" is not a non-negative number\n", cmd, opt, text);
        return false;
    }
    *v = n;
    return true;
}

const char *rt_ctl_bytes(uint64_t bytes, char *buf, size_t size)
{
    if (bytes < 1024)
        snprintf(buf, size, "%" PRIu64 " B", bytes);
    else if (bytes < 1024 * 1024)
        snprintf(buf, size, "%.1f KiB", bytes / 1024.0);
    else if (bytes < 1024ull * 1024 * 1024)
        snprintf(buf, size, "%.1f MiB", bytes / 1048576.0);
    else
        snprintf(buf, size, "%.2f GiB", bytes / 1073741824.0);
    return buf;
}

const char *rt_ctl_ms(int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        snprintf(buf, size, "-");
    else if (ms < 10000)
        snprintf(buf, size, "%.2f s", ms / 1000.0);
    else if (ms < 3600 * 1000)
        snprintf(buf, size, "%.0f s", ms / 1000.0);
    else
        snprintf(buf, size, "%.1f h", ms / 3600000.0);
    return buf;
}

const char *rt_ctl_pg_time(int64_t pg_us, char *buf, size_t size)
{
    if (pg_us == 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    int64_t unix_us = rt_pg_to_unix_us(pg_us);
    time_t t = (time_t)(unix_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[40];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03d UTC", day, (int)((unix_us / 1000) % 1000));
    return buf;
}

uint64_t rt_ctl_lag_records(const rt_status_t *st, const rt_status_sub_t *sub)
{
    return st->head_seq > sub->acked_seq ? st->head_seq - sub->acked_seq : 0;
}

int rt_ctl_cmd_ping(const rt_ctl_t *g0, int argc, char **argv)
{
    rt_ctl_t g = *g0;
    if (argc > 2) {
        fprintf(stderr, "rtctl ping: too many arguments (usage: rtctl ping [ENDPOINT])\n");
        return RT_EXIT_USAGE;
    }
    if (argc == 2)
        g.endpoint = argv[1];
    rt_msg_t ping = {.type = RT_MSG_PING};
    void *reply;
    size_t len;
    int64_t t0 = zclock_usecs();
    int rc = rt_ctl_call(&g, &ping, &reply, &len);
    if (rc != RT_EXIT_OK)
        return rc;
    int64_t rtt = zclock_usecs() - t0;
    rt_msg_t pong;
    if (rt_msg_decode(reply, len, &pong) < 0 || pong.type != RT_MSG_PONG) {
        fprintf(stderr, "rtctl: %s answered PING with something that is not a PONG\n",
                g.endpoint);
        if (pong.type)
            rt_msg_clear(&pong);
        free(reply);
        return RT_EXIT_FAILURE;
    }
    printf("PONG from %s: source %s, head seq %" PRIu64 ", round trip %.3f ms\n", g.endpoint,
           pong.source, pong.head_seq, rtt / 1000.0);
    rt_msg_clear(&pong);
    free(reply);
    return RT_EXIT_OK;
}

/* Milliseconds between two PostgreSQL-epoch times, or -1 if either is unknown. */
static int64_t s_age_ms(int64_t now_us, int64_t then_us)
{
    return now_us && then_us ? (now_us - then_us) / 1000 : -1;
}

static void s_print_json(const rt_status_t *st)
{
    rt_buf_t out;
    rt_buf_init(&out);
    rt_status_json(&out, st);
    if (rt_buf_error(&out) == 0)
        printf("%s\n", rt_buf_str(&out));
    rt_buf_free(&out);
}

static void s_print_text(const rt_status_t *st)
{
    char r[32], c[32], b[32], a1[32], a2[32];
    printf("publisher %s (slot %s): capture %s\n", st->source, st->slot,
           rt_capture_state_name(st->capture_state));
    if (st->records)
        printf("  outbox: seqs %" PRIu64 "..%" PRIu64 ", %" PRIu64
               " records, %s; oldest record %s old, head committed %s ago\n",
               st->first_seq, st->head_seq, st->records,
               rt_ctl_bytes(st->outbox_bytes, b, sizeof b),
               rt_ctl_ms(s_age_ms(st->now_ts, st->oldest_ts), a1, sizeof a1),
               rt_ctl_ms(s_age_ms(st->now_ts, st->head_ts), a2, sizeof a2));
    else
        printf("  outbox: empty, head seq %" PRIu64 ", %s\n", st->head_seq,
               rt_ctl_bytes(st->outbox_bytes, b, sizeof b));
    printf("  source: received %s, confirmed %s\n", rt_lsn_format(st->received_lsn, r, sizeof r),
           rt_lsn_format(st->confirmed_lsn, c, sizeof c));
    printf("  captured since start: %" PRIu64 " transactions, %" PRIu64 " rows\n",
           st->captured_txns, st->captured_rows);
    printf("subscribers: %u\n", st->nsubs);
    if (st->nsubs)
        printf("  %-16s %-11s %10s %9s %10s %8s %9s %9s\n", "NAME", "STATE", "APPLIED",
               "LAG RECS", "LAG BYTES", "LAG", "CONFLICTS", "SEEN");
    for (uint32_t i = 0; i < st->nsubs; i++) {
        const rt_status_sub_t *s = &st->subs[i];
        char seen[32], lag[32];
        if (s->seen_ms_ago < 0)
            snprintf(seen, sizeof seen, "never");
        else
            snprintf(seen, sizeof seen, "%.1fs ago", s->seen_ms_ago / 1000.0);
        printf("  %-16s %-11s %10" PRIu64 " %9" PRIu64 " %10s %8s %9" PRIu64 " %9s\n", s->name,
               rt_sub_state_name((int)s->state), s->acked_seq, rt_ctl_lag_records(st, s),
               rt_ctl_bytes(s->lag_bytes, b, sizeof b), rt_ctl_ms(s->lag_ms, lag, sizeof lag),
               s->conflicts, seen);
        if (s->error[0])
            printf("    last error: %s\n", s->error);
    }
}

int rt_ctl_cmd_status(const rt_ctl_t *g, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "rtctl status: unknown option \"%s\" (usage: rtctl status [--json])\n",
                    argv[i]);
            return RT_EXIT_USAGE;
        }
    }
    rt_status_t st;
    int rc = rt_ctl_status_fetch(g, &st);
    if (rc != RT_EXIT_OK)
        return rc;
    if (json)
        s_print_json(&st);
    else
        s_print_text(&st);
    rt_status_clear(&st);
    return RT_EXIT_OK;
}
