/* rtctl/ctl.c - what rtctl's command families share: the request helpers, argument
 * parsing and the formats of the text views. */
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "ctl.h"

void rt_ctl_printable(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

void rt_ctl_status_printable(rt_status_t *st)
{
    rt_ctl_printable(st->source);
    rt_ctl_printable(st->slot);
    for (uint32_t i = 0; i < st->nsubs; i++) {
        rt_ctl_printable(st->subs[i].name);
        rt_ctl_printable(st->subs[i].error);
    }
}

int rt_ctl_call(const rt_ctl_t *g, const rt_msg_t *msg, void **reply, size_t *len)
{
    rt_client_t *c = rt_client_new(g->endpoint, g->cert, g->publisher_key);
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
            rt_ctl_printable(e.text);
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
        fprintf(stderr, "rtctl: %s answered with something that is not OK or ERROR\n", g->endpoint);
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
    rt_ctl_status_printable(st);
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

/* rt_ctl_bytes, or "-" when bytes < 0 (unknown). */
static const char *s_bytes_known(int64_t bytes, char *buf, size_t size)
{
    if (bytes < 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    return rt_ctl_bytes((uint64_t)bytes, buf, size);
}

const char *rt_ctl_slot_line(const rt_status_t *st, char *buf, size_t size)
{
    char retained[32], lag[32], ms[32];
    snprintf(buf, size, "retained WAL %s, source lag %s, %s",
             s_bytes_known(st->retained_wal_bytes, retained, sizeof retained),
             s_bytes_known(st->source_lag_bytes, lag, sizeof lag),
             rt_ctl_ms(st->source_lag_ms, ms, sizeof ms));
    return buf;
}

const char *rt_ctl_limit(const rt_status_t *st, char *buf, size_t size)
{
    char b[32];
    if (st->outbox_limit_bytes < 0)
        snprintf(buf, size, "%s", "");
    else if (st->outbox_limit_bytes == 0)
        snprintf(buf, size, " (no limit)");
    else
        snprintf(buf, size, " (limit %s)",
                 rt_ctl_bytes((uint64_t)st->outbox_limit_bytes, b, sizeof b));
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

const char *rt_ctl_copy_line(const rt_copy_progress_t *p, char *buf, size_t size)
{
    if (!p->tables_total)
        return NULL;
    char done[32], total[32], rate[32], left[48] = "";
    double secs = (double)p->elapsed_ms / 1000.0;
    uint64_t per_s = secs > 0 ? (uint64_t)((double)p->bytes / secs) : 0;
    rt_ctl_bytes(p->bytes, done, sizeof done);
    if (p->bytes_total > p->bytes && per_s > 0) {
        char t[32];
        snprintf(left, sizeof left, ", ~%s left",
                 rt_ctl_ms((int64_t)((p->bytes_total - p->bytes) * 1000 / per_s), t, sizeof t));
    }
    snprintf(
        buf, size,
        "initial copy: %" PRIu64 " of %" PRIu64 " tables, %" PRIu64 " rows, %s of ~%s "
        "(%s/s)%s",
        p->tables_done, p->tables_total, p->rows, done,
        rt_ctl_bytes(p->bytes_total > p->bytes ? p->bytes_total : p->bytes, total, sizeof total),
        rt_ctl_bytes(per_s, rate, sizeof rate), left);
    return buf;
}
