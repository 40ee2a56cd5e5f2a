/* rtctl/top.c - rtctl top: a live 80x24 view of a publisher and its subscribers.
 *
 * Plain ANSI escapes (alternate screen, cursor home, clear to end of line); the
 * terminal is put in non-canonical, no-echo mode and restored on every exit path,
 * including SIGINT and SIGTERM. Rates are differences between two STATUS replies.
 *
 *   rt top - publisher src (slot rt_src)               2026-11-25 15:04:05 UTC
 *   capture streaming     312.0 txn/s    1248.0 rows/s   head seq 10234
 *   outbox  10234 records, 4.1 MiB, seqs 1..10234, oldest 61 s
 *   slot    retained WAL 12.3 MiB, source lag 1.2 MiB, 0.35 s
 *   txn/s over the last 60 s (peak 402.0):
 *   [sparkline of 60 columns]
 *    #  SUBSCRIBER        STATE         APPLIED  LAG RECS       LAG    REC/S  CONFL
 *    1  replica1          streaming       10234         0    0.01 s    312.0      0
 *   ...
 *   keys: p N pause  r N resume  q quit            (message line)
 */
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "ctl.h"
#include "daemon.h"

#define S_COLS 80
#define S_ROWS 24
#define S_SPARK_SECONDS 60
#define S_SAMPLES 1024 /* rate samples kept (60 s at the shortest interval) */
#define S_MAX_SUBS_SHOWN 12
#define S_MIN_INTERVAL_MS 100

/* One throughput sample: capture txn/s at a time. */
typedef struct {
    int64_t ms;  /* monotonic time */
    double rate; /* txn/s */
} s_sample_t;

typedef struct {
    const rt_ctl_t *g;
    int interval_ms;
    rt_status_t prev, cur; /* the two last replies */
    bool have_prev, have_cur;
    int64_t prev_ms, cur_ms; /* when they arrived */
    char fetch_error[200];   /* why the last STATUS failed, "" if it did not */
    s_sample_t samples[S_SAMPLES];
    size_t nsamples, start;
    char pending; /* 'p' or 'r' waiting for a subscriber number, else 0 */
    char message[S_COLS + 1];
    bool utf8; /* the terminal takes UTF-8 (block characters) */
} s_top_t;

static volatile sig_atomic_t s_stop = 0;
static struct termios s_saved_tty;
static bool s_tty_raw = false;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_tty_restore(void)
{
    if (!s_tty_raw)
        return;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &s_saved_tty);
    fputs("\033[?25h\033[?1049l", stdout); /* cursor back, leave the alternate screen */
    fflush(stdout);
    s_tty_raw = false;
}

static bool s_tty_setup(void)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return false;
    if (tcgetattr(STDIN_FILENO, &s_saved_tty) != 0)
        return false;
    struct termios raw = s_saved_tty;
    raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
        return false;
    s_tty_raw = true;
    fputs("\033[?1049h\033[?25l\033[2J", stdout); /* alternate screen, hide the cursor */
    return true;
}

/* One request without printing anything (the screen is ours): 0, or fills err. */
static int s_request(const rt_ctl_t *g, const rt_msg_t *msg, void **reply, size_t *len, char *err,
                     size_t errsize)
{
    rt_client_t *c = rt_client_new(g->endpoint, g->cert, g->publisher_key);
    if (!c) {
        snprintf(err, errsize, "cannot connect to %s", g->endpoint);
        return -1;
    }
    int rc = rt_client_call(c, msg, g->timeout_ms, reply, len);
    rt_client_destroy(&c);
    if (rc == RT_EAGAIN) {
        snprintf(err, errsize, "no answer from %s within %d ms", g->endpoint, g->timeout_ms);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errsize, "talking to %s failed: %s", g->endpoint, rt_strerror(rc));
        return -1;
    }
    if (rt_msg_peek_type(*reply, *len) == RT_MSG_ERROR) {
        rt_msg_t e;
        if (rt_msg_decode(*reply, *len, &e) == 0) {
            rt_ctl_printable(e.text);
            snprintf(err, errsize, "%s", e.text);
            rt_msg_clear(&e);
        } else {
            snprintf(err, errsize, "malformed ERROR from %s", g->endpoint);
        }
        free(*reply);
        return -1;
    }
    return 0;
}

static void s_add_sample(s_top_t *t, int64_t ms, double rate)
{
    if (t->nsamples == S_SAMPLES) {
        t->start = (t->start + 1) % S_SAMPLES;
        t->nsamples--;
    }
    t->samples[(t->start + t->nsamples) % S_SAMPLES] = (s_sample_t){ms, rate};
    t->nsamples++;
}

/* Fetches a STATUS; moves cur to prev and records the throughput sample. */
static void s_refresh(s_top_t *t)
{
    rt_msg_t req = {.type = RT_MSG_STATUS};
    void *reply;
    size_t len;
    rt_status_t st;
    if (s_request(t->g, &req, &reply, &len, t->fetch_error, sizeof t->fetch_error) != 0)
        return;
    int rc = rt_status_decode(reply, len, &st);
    free(reply);
    if (rc < 0) {
        snprintf(t->fetch_error, sizeof t->fetch_error, "malformed STATUS_REPLY from %s",
                 t->g->endpoint);
        return;
    }
    rt_ctl_status_printable(&st);
    t->fetch_error[0] = '\0';
    if (t->have_prev)
        rt_status_clear(&t->prev);
    if (t->have_cur) {
        t->prev = t->cur;
        t->prev_ms = t->cur_ms;
        t->have_prev = true;
    }
    t->cur = st;
    t->cur_ms = rt_mono_ms();
    t->have_cur = true;
    if (t->have_prev && t->cur_ms > t->prev_ms && t->cur.captured_txns >= t->prev.captured_txns)
        s_add_sample(t, t->cur_ms,
                     (double)(t->cur.captured_txns - t->prev.captured_txns) * 1000.0 /
                         (double)(t->cur_ms - t->prev_ms));
}

/* Rate of a counter between prev and cur, per second (0 without two replies). */
static double s_rate(const s_top_t *t, uint64_t before, uint64_t now)
{
    if (!t->have_prev || t->cur_ms <= t->prev_ms || now < before)
        return 0;
    return (double)(now - before) * 1000.0 / (double)(t->cur_ms - t->prev_ms);
}

static double s_sub_rate(const s_top_t *t, const rt_status_sub_t *s)
{
    if (!t->have_prev)
        return 0;
    for (uint32_t i = 0; i < t->prev.nsubs; i++)
        if (strcmp(t->prev.subs[i].name, s->name) == 0)
            return s_rate(t, t->prev.subs[i].acked_seq, s->acked_seq);
    return 0;
}

/* Writes the sparkline of the last 60 s of txn/s into out (60 columns); *peak gets
 * the largest rate in the window. */
static void s_sparkline(const s_top_t *t, char *out, size_t size, double *peak)
{
    static const char *const blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                         "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[] = "_.-:=+*#";
    double col[S_SPARK_SECONDS];
    bool has[S_SPARK_SECONDS] = {false};
    int64_t now = t->cur_ms;
    *peak = 0;
    for (size_t i = 0; i < t->nsamples; i++) {
        const s_sample_t *s = &t->samples[(t->start + i) % S_SAMPLES];
        int64_t age = now - s->ms;
        if (age < 0 || age >= S_SPARK_SECONDS * 1000)
            continue;
        int c = S_SPARK_SECONDS - 1 - (int)(age / 1000);
        if (!has[c] || s->rate > col[c])
            col[c] = s->rate;
        has[c] = true;
        if (s->rate > *peak)
            *peak = s->rate;
    }
    size_t n = 0;
    out[0] = '\0';
    for (int c = 0; c < S_SPARK_SECONDS; c++) {
        int level = 0;
        if (has[c] && *peak > 0)
            level = (int)(col[c] / *peak * 7.0 + 0.5);
        if (level > 7)
            level = 7;
        const char *cell;
        char one[2] = {0, 0};
        if (!has[c]) {
            cell = " ";
        } else if (t->utf8) {
            cell = blocks[level];
        } else {
            one[0] = ascii[level];
            cell = one;
        }
        size_t cl = strlen(cell);
        if (n + cl + 1 > size)
            break;
        memcpy(out + n, cell, cl + 1);
        n += cl;
    }
}

/* Writes the frame: rows of at most S_COLS columns. ansi: with cursor-home and
 * clear-to-end-of-line escapes (live view), else plain lines (--once). */
static void s_draw(s_top_t *t, bool ansi)
{
    const char *eol = ansi ? "\033[K\n" : "\n";
    char when[48], b[32], a[32], line[S_COLS + 1];
    int rows = 0;
    if (ansi)
        fputs("\033[H", stdout);
    rt_ctl_pg_time(rt_pg_now_us(), when, sizeof when);
    if (strlen(when) > 4)
        when[strlen(when) - 8] = '\0'; /* to the second, without " UTC" */
    if (!t->have_cur) {
        snprintf(line, sizeof line, "rt top - %s", t->g->endpoint);
        printf("%-56.56s %23s%s", line, when, eol);
        printf("%.80s%s", t->fetch_error[0] ? t->fetch_error : "waiting for the publisher", eol);
        rows = 2;
    } else {
        const rt_status_t *st = &t->cur;
        if (st->upstream[0])
            snprintf(line, sizeof line, "rt top - relay of %.20s from %.24s", st->source,
                     st->upstream);
        else
            snprintf(line, sizeof line, "rt top - publisher %.20s (slot %.20s)", st->source,
                     st->slot);
        printf("%-56.56s %19s UTC%s", line, when, eol);
        printf("%-7s %-12.12s %9.1f txn/s %10.1f rows/s   head seq %" PRIu64 "%s",
               st->upstream[0] ? "takes" : "capture", rt_capture_state_name(st->capture_state),
               s_rate(t, t->have_prev ? t->prev.captured_txns : 0, st->captured_txns),
               s_rate(t, t->have_prev ? t->prev.captured_rows : 0, st->captured_rows), st->head_seq,
               eol);
        if (st->records)
            snprintf(
                line, sizeof line,
                "outbox  %" PRIu64 " records, %s, seqs %" PRIu64 "..%" PRIu64 ", oldest %s",
                st->records, rt_ctl_bytes(st->outbox_bytes, b, sizeof b), st->first_seq,
                st->head_seq,
                rt_ctl_ms(st->now_ts && st->oldest_ts ? (st->now_ts - st->oldest_ts) / 1000 : -1, a,
                          sizeof a));
        else
            snprintf(line, sizeof line, "outbox  empty (head seq %" PRIu64 "), %s", st->head_seq,
                     rt_ctl_bytes(st->outbox_bytes, b, sizeof b));
        printf("%s%s", line, eol);
        char slot[128];
        printf("slot    %.72s%s", rt_ctl_slot_line(st, slot, sizeof slot), eol);
        double peak;
        char spark[S_SPARK_SECONDS * 4 + 1];
        s_sparkline(t, spark, sizeof spark, &peak);
        printf("capture txn/s over the last 60 s (peak %.1f):%s", peak, eol);
        printf("[%s]%s", spark, eol);
        printf("%s", eol);
        printf(" #  %-17s %-12s %9s %9s %9s %8s %6s%s", "SUBSCRIBER", "STATE", "APPLIED",
               "LAG RECS", "LAG", "REC/S", "CONFL", eol);
        rows = 8;
        for (uint32_t i = 0; i < st->nsubs && i < S_MAX_SUBS_SHOWN; i++) {
            const rt_status_sub_t *s = &st->subs[i];
            printf("%2u  %-17.17s %-12.12s %9" PRIu64 " %9" PRIu64 " %9s %8.1f %6" PRIu64 "%s",
                   i + 1, s->name, rt_sub_state_name((int)s->state), s->acked_seq,
                   rt_ctl_lag_records(st, s), rt_ctl_ms(s->lag_ms, a, sizeof a), s_sub_rate(t, s),
                   s->conflicts, eol);
            rows++;
            char copy[160];
            if (rt_ctl_copy_line(&s->copy, copy, sizeof copy)) {
                printf("    %.76s%s", copy, eol);
                rows++;
            }
        }
        if (st->nsubs > S_MAX_SUBS_SHOWN) {
            printf("    ... and %u more%s", st->nsubs - S_MAX_SUBS_SHOWN, eol);
            rows++;
        }
        if (st->nsubs == 0) {
            printf("    no subscriber has registered yet%s", eol);
            rows++;
        }
        if (t->fetch_error[0]) {
            printf("%.80s%s", t->fetch_error, eol);
            rows++;
        }
    }
    if (!ansi)
        return;
    for (; rows < S_ROWS - 2; rows++)
        printf("%s", eol);
    printf("%-80.80s%s", t->message, eol);
    printf("keys: p N pause subscriber N   r N resume it   q quit\033[K\033[J");
    fflush(stdout);
}

/* Pauses or resumes subscriber number n (1-based) of the last reply. */
static void s_admin(s_top_t *t, char action, int n)
{
    if (!t->have_cur || n < 1 || (uint32_t)n > t->cur.nsubs) {
        snprintf(t->message, sizeof t->message, "no subscriber number %d", n);
        return;
    }
    const char *name = t->cur.subs[n - 1].name;
    rt_msg_t m = {.type = action == 'p' ? RT_MSG_PAUSE : RT_MSG_RESUME, .name = (char *)name};
    void *reply;
    size_t len;
    char err[200];
    if (s_request(t->g, &m, &reply, &len, err, sizeof err) != 0) {
        snprintf(t->message, sizeof t->message, "%s %.24s failed: %.40s",
                 action == 'p' ? "pause" : "resume", name, err);
        return;
    }
    rt_msg_t ok;
    if (rt_msg_decode(reply, len, &ok) == 0 && ok.type == RT_MSG_OK)
        snprintf(t->message, sizeof t->message, "%s", ok.text);
    else
        snprintf(t->message, sizeof t->message, "unexpected answer to %s",
                 action == 'p' ? "pause" : "resume");
    if (ok.type)
        rt_msg_clear(&ok);
    free(reply);
}

/* Handles one key; returns false to quit. */
static bool s_key(s_top_t *t, char c)
{
    if (c == 'q' || c == 'Q')
        return false;
    if (c == 'p' || c == 'r') {
        t->pending = c;
        snprintf(t->message, sizeof t->message,
                 "%s which subscriber? press its number (Esc "
                 "cancels)",
                 c == 'p' ? "pause" : "resume");
        return true;
    }
    if (t->pending && c >= '1' && c <= '9') {
        char action = t->pending;
        t->pending = 0;
        s_admin(t, action, c - '0');
        return true;
    }
    if (c == 27 && t->pending) {
        t->pending = 0;
        t->message[0] = '\0';
    }
    return true;
}

int rt_ctl_cmd_top(const rt_ctl_t *g, int argc, char **argv)
{
    s_top_t *t = NULL;
    bool once = false;
    uint64_t interval = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            once = true;
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            if (!rt_ctl_parse_u64("top", "--interval", argv[++i], &interval))
                return RT_EXIT_USAGE;
            if (interval < S_MIN_INTERVAL_MS || interval > 60000) {
                fprintf(stderr, "rtctl top: --interval: %s ms is outside %d..60000\n", argv[i],
                        S_MIN_INTERVAL_MS);
                return RT_EXIT_USAGE;
            }
        } else {
            fprintf(stderr,
                    "rtctl top: unknown or incomplete option \"%s\" (usage: rtctl top "
                    "[--once] [--interval MS])\n",
                    argv[i]);
            return RT_EXIT_USAGE;
        }
    }
    t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "rtctl top: out of memory\n");
        return RT_EXIT_FAILURE;
    }
    t->g = g;
    t->interval_ms = (int)interval;
    setlocale(LC_CTYPE, "");
    const char *cs = nl_langinfo(CODESET);
    t->utf8 = cs && strcmp(cs, "UTF-8") == 0;
    int code = RT_EXIT_OK;

    if (once) {
        s_refresh(t);
        if (t->have_cur) {
            usleep((useconds_t)interval * 1000);
            s_refresh(t);
        }
        if (!t->have_cur) {
            fprintf(stderr, "rtctl top: %s\n", t->fetch_error);
            code = RT_EXIT_FAILURE;
            goto cleanup;
        }
        s_draw(t, false);
        goto cleanup;
    }

    rt_signals_install(s_on_signal);
    bool keys = s_tty_setup();
    int64_t next = rt_mono_ms();
    bool run = true;
    while (run && !s_stop) {
        int64_t now = rt_mono_ms();
        if (now >= next) {
            s_refresh(t);
            s_draw(t, true);
            next = now + t->interval_ms;
            continue;
        }
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int rc = poll(&p, keys ? 1 : 0, (int)(next - now));
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && (p.revents & POLLIN)) {
            char buf[32];
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0) {
                keys = false; /* stdin closed: no more keys, keep refreshing */
                continue;
            }
            for (ssize_t i = 0; i < n && run; i++)
                run = s_key(t, buf[i]);
            s_draw(t, true);
        }
    }
    s_tty_restore();
cleanup:
    if (t->have_prev)
        rt_status_clear(&t->prev);
    if (t->have_cur)
        rt_status_clear(&t->cur);
    free(t);
    return code;
}
