/* rtctl/status.c - rtctl status and ping. */
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "ctl.h"
#include "status_json.h"

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
        fprintf(stderr, "rtctl: %s answered PING with something that is not a PONG\n", g.endpoint);
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
    char r[32], c[32], b[32], a1[32], a2[32], lim[48], slot[128];
    bool relay = st->upstream[0] != '\0';
    if (relay)
        printf("relay of source %s, following %s: %s, sockets %s\n", st->source, st->upstream,
               rt_capture_state_name(st->capture_state), rt_security_name(st->security));
    else
        printf("publisher %s (slot %s): capture %s, sockets %s\n", st->source, st->slot,
               rt_capture_state_name(st->capture_state), rt_security_name(st->security));
    if (st->security == RT_SECURITY_INSECURE)
        printf("  WARNING: the publisher serves other hosts in plaintext (--insecure): anyone who "
               "reaches it reads every record and can pause, forget and replay\n");
    if (st->records)
        printf("  outbox: seqs %" PRIu64 "..%" PRIu64 ", %" PRIu64
               " records, %s%s; oldest record %s old, head committed %s ago\n",
               st->first_seq, st->head_seq, st->records,
               rt_ctl_bytes(st->outbox_bytes, b, sizeof b), rt_ctl_limit(st, lim, sizeof lim),
               rt_ctl_ms(s_age_ms(st->now_ts, st->oldest_ts), a1, sizeof a1),
               rt_ctl_ms(s_age_ms(st->now_ts, st->head_ts), a2, sizeof a2));
    else
        printf("  outbox: empty, head seq %" PRIu64 ", %s%s\n", st->head_seq,
               rt_ctl_bytes(st->outbox_bytes, b, sizeof b), rt_ctl_limit(st, lim, sizeof lim));
    if (relay) {
        if (st->upstream_head)
            printf("  its publisher: head seq %" PRIu64 ", %" PRIu64 " records ahead of this "
                   "outbox\n",
                   st->upstream_head,
                   st->upstream_head > st->head_seq ? st->upstream_head - st->head_seq : 0);
        else
            printf("  its publisher: head seq not known (not connected)\n");
        printf("  taken since start: %" PRIu64 " transactions, %" PRIu64 " rows\n",
               st->captured_txns, st->captured_rows);
    } else {
        printf("  source: received %s, confirmed %s\n",
               rt_lsn_format(st->received_lsn, r, sizeof r),
               rt_lsn_format(st->confirmed_lsn, c, sizeof c));
        printf("  slot: %s\n", rt_ctl_slot_line(st, slot, sizeof slot));
        printf("  captured since start: %" PRIu64 " transactions, %" PRIu64 " rows\n",
               st->captured_txns, st->captured_rows);
    }
    printf("subscribers: %u\n", st->nsubs);
    if (st->nsubs)
        printf("  %-16s %-11s %10s %9s %10s %8s %9s %9s\n", "NAME", "STATE", "APPLIED", "LAG RECS",
               "LAG BYTES", "LAG", "CONFLICTS", "SEEN");
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
        char copy[160];
        if (rt_ctl_copy_line(&s->copy, copy, sizeof copy))
            printf("    %s\n", copy);
        if (s->error[0])
            printf("    last error: %s\n", s->error);
    }
}

/* The mesh view of several publishers' statuses: for each node (a subscriber name) and
 * each source (a publisher), that subscriber's lag behind that publisher, or its state
 * when it is not streaming; "." where a node is the source itself. */
static void s_print_mesh(const rt_status_t *sts, const bool *ok, int n)
{
    const char *nodes[64];
    int nnodes = 0;
    for (int k = 0; k < n; k++) {
        if (ok[k] && nnodes < 64) {
            bool seen = false;
            for (int j = 0; j < nnodes && !seen; j++)
                seen = strcmp(nodes[j], sts[k].source) == 0;
            if (!seen)
                nodes[nnodes++] = sts[k].source;
        }
        for (uint32_t i = 0; ok[k] && i < sts[k].nsubs && nnodes < 64; i++) {
            bool seen = false;
            for (int j = 0; j < nnodes && !seen; j++)
                seen = strcmp(nodes[j], sts[k].subs[i].name) == 0;
            if (!seen)
                nodes[nnodes++] = sts[k].subs[i].name;
        }
    }
    printf("\nmesh: the lag of each node (row) behind each source (column)\n  %-16s", "NODE");
    for (int k = 0; k < n; k++)
        printf(" %14.14s", ok[k] ? sts[k].source : "(unreachable)");
    printf("\n");
    for (int j = 0; j < nnodes; j++) {
        printf("  %-16.16s", nodes[j]);
        for (int k = 0; k < n; k++) {
            char cell[32] = "-";
            if (ok[k] && strcmp(sts[k].source, nodes[j]) == 0)
                snprintf(cell, sizeof cell, ".");
            for (uint32_t i = 0; ok[k] && i < sts[k].nsubs; i++) {
                const rt_status_sub_t *sub = &sts[k].subs[i];
                if (strcmp(sub->name, nodes[j]) != 0)
                    continue;
                if (sub->state == RT_SUB_STREAMING)
                    rt_ctl_ms(sub->lag_ms < 0 ? 0 : sub->lag_ms, cell, sizeof cell);
                else
                    snprintf(cell, sizeof cell, "%s", rt_sub_state_name((int)sub->state));
            }
            printf(" %14s", cell);
        }
        printf("\n");
    }
    printf("  (- : that node does not subscribe to that source)\n");
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
    int n = g->nendpoints > 1 ? g->nendpoints : 1;
    rt_status_t sts[RT_CTL_MAX_PUBLISHERS];
    bool ok[RT_CTL_MAX_PUBLISHERS];
    int code = RT_EXIT_OK;
    for (int k = 0; k < n; k++) {
        rt_ctl_t one = *g;
        if (g->nendpoints > 1) {
            one.endpoint = g->endpoints[k];
            one.publisher_key = g->publisher_keys[k];
        }
        int rc = rt_ctl_status_fetch(&one, &sts[k]);
        ok[k] = rc == RT_EXIT_OK;
        if (!ok[k]) {
            code = rc;
            memset(&sts[k], 0, sizeof sts[k]);
        }
    }
    if (n == 1) {
        if (ok[0]) {
            if (json)
                s_print_json(&sts[0]);
            else
                s_print_text(&sts[0]);
        }
    } else if (json) {
        /* An array, one status per publisher in the order given (null: unreachable). */
        printf("[");
        for (int k = 0; k < n; k++) {
            if (k)
                printf(",");
            if (!ok[k]) {
                printf("null");
                continue;
            }
            rt_buf_t out;
            rt_buf_init(&out);
            rt_status_json(&out, &sts[k]);
            if (rt_buf_error(&out) == 0)
                printf("%s", rt_buf_str(&out));
            rt_buf_free(&out);
        }
        printf("]\n");
    } else {
        for (int k = 0; k < n; k++) {
            if (k)
                printf("\n");
            if (ok[k])
                s_print_text(&sts[k]);
            else
                printf("publisher at %s: unreachable (see above)\n", g->endpoints[k]);
        }
        s_print_mesh(sts, ok, n);
    }
    for (int k = 0; k < n; k++)
        if (ok[k])
            rt_status_clear(&sts[k]);
    return code;
}
