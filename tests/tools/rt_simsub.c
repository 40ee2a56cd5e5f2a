/* tests/tools/rt_simsub.c - a simulated subscriber: speaks the subscriber's side of the
 * protocol as rt-subscriber does and acknowledges what it would have committed, without
 * a database (tests/integration/scale_subs.sh, the scale case of bench/run.sh).
 *
 * Usage: rt_simsub --name NAME [--cert SECRET --publisher-key CERT] [--pub ENDPOINT]
 *                  [--from SEQ] [--until SEQ] [--seconds N] ENDPOINT
 *
 * The conversation (schemas/protocol.md, "Subscriber life"): DEALER with routing id
 * NAME to the publisher's ROUTER at ENDPOINT, PING, PONG, HELLO{NAME, SEQ} (SEQ from
 * --from, default 0: a fresh replica), WELCOME, then SUB to its PUB endpoint (or --pub).
 * Records are taken in seq order from wherever they come: live (LIVE + REC on PUB) or
 * fetched (FETCH{from, count} answered by RECs and FETCHED on the DEALER), with the
 * subscriber's credit (3 FETCHes of up to 256 records out), its retries (5 s), its hold
 * of live records past a gap until FETCH fills it, its silence limit (5 s: reconnect,
 * HELLO from what it acknowledged) and its ACK cadence (at most every 100 ms, at least
 * every second); a new run id of the publisher rolls back what is not acknowledged and
 * starts over, as rt-subscriber does.
 *
 * What it acknowledges (the durability rule, "Live records and durability"): the last
 * record, in seq order with none missing, that ends a source transaction (flag LAST)
 * and is known stored: its seq is at or below the newest head_seq that WELCOME,
 * FETCHED, HUGZ or LIVE of the same run announced, or below a record it fetched (FETCH
 * serves stored records only). That is what rt-subscriber commits on its replica, at
 * once rather than in groups.
 *
 * What it checks, each counted, all errors but live_drops:
 *   gaps   a FETCH answer that misses a record (its RECs not dense from its from_seq up
 *          to the FETCHED's last_seq);
 *   dups   a seq twice in a row on one channel (the live stream, one FETCH answer);
 *   back   a seq below the one before it on one channel;
 *   mismatch  a seq that came twice (live and fetched) with different bytes: a record
 *          is stored exactly as it is published;
 *   order  the taken records do not frame transactions (FIRST, then records of the same
 *          xid and commit LSN, then LAST) or a transaction's commit LSN is below the one
 *          before it;
 *   errors malformed or unexpected frames, ERROR from the publisher, not reaching --until.
 * A jump forward on the live stream (live_drops) is not an error: PUB drops past its
 * high-water mark, and the missing records are fetched.
 *
 * Latency: for each acknowledged record, the time it became acknowledgeable (taken, and
 * known stored) minus its source commit time (REC commit_ts, the source's clock; the
 * same machine in tests), with 1% precision (a log-linear histogram).
 *
 * Ends on SIGTERM or SIGINT, once it acknowledged --until SEQ, or after --seconds N,
 * and prints one line on stdout:
 *   simsub NAME records=N first_seq=A last_seq=B gaps=0 dups=0 back=0 mismatch=0 order=0
 *     errors=0 live_drops=K fetches=F reconnects=R p50_ms=X p99_ms=Y max_ms=Z rss_kb=M
 * (one line; last_seq is the last seq it acknowledged, records how many it acknowledged,
 * rss_kb its peak RSS). Exit status 0 when every error counter is 0 (and --until was
 * reached when given), 1 otherwise, 2 for bad usage. Progress and problems go to stderr,
 * with a "ready:" line once WELCOME came. One ZeroMQ context with one I/O thread.
 */
#include <czmq.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "curve.h"
#include "log.h"
#include "wire.h"

#define S_POLL_MS 100
#define S_RECV_BATCH 256
/* Live records kept past a gap (by seq modulo this), and records remembered for the
 * live/fetched byte comparison. */
#define S_HOLD 4096
#define S_SEEN 16384
/* Latency histogram: 128 buckets per power of two of microseconds (< 1% wide). */
#define S_SUB_BITS 7
#define S_BUCKETS (64 << S_SUB_BITS)

typedef enum { S_DOWN, S_PINGING, S_HELLO, S_STREAMING } s_state_t;

/* What is kept of a record: enough to take it in order later. */
typedef struct {
    uint64_t seq;        /* 0: empty slot */
    uint8_t flags;       /* RT_REC_FIRST | RT_REC_LAST */
    uint32_t xid;        /* source transaction */
    rt_lsn_t commit_lsn; /* its commit LSN */
    int64_t commit_ts;   /* its source commit time (PostgreSQL epoch us) */
} s_meta_t;

/* A source transaction taken in full, waiting to be known stored. */
typedef struct {
    uint64_t seq;        /* its LAST record */
    uint64_t nrecs;      /* its records */
    rt_lsn_t commit_lsn; /* its commit LSN */
    int64_t commit_ts;   /* its source commit time */
} s_end_t;

typedef struct {
    uint64_t seq;  /* 0: empty slot */
    uint64_t hash; /* FNV-1a of the REC frame */
} s_seen_t;

typedef struct {
    /* Options. */
    const char *name;      /* routing id and HELLO name */
    const char *publisher; /* ROUTER endpoint */
    const char *pub;       /* PUB endpoint override, or NULL */
    zcert_t *cert;         /* CURVE key pair, or NULL */
    char server_key[RT_CURVE_KEY_LEN];
    bool curve;     /* server_key is set */
    uint64_t until; /* end once this seq is acknowledged (0: no) */

    /* The connection: sockets, the publisher's run and heads, the FETCH credit and the
     * timers, as rt-subscriber's link. */
    rt_client_t c;
    rt_record_decoder_t *dec;
    int state;         /* s_state_t */
    char *source;      /* from PONG */
    bool paused;       /* the publisher paused this subscriber */
    bool ready_logged; /* the "ready:" line was written */

    /* The FETCH answer being received on the DEALER. */
    uint64_t reply_first, reply_last, reply_count;

    /* Taking records in order. */
    uint64_t expected;      /* next seq to take */
    uint64_t committed;     /* last seq acknowledged-worthy (ends a stored transaction) */
    int64_t committed_ts;   /* its source commit time */
    int64_t committed_at;   /* when it became so */
    rt_lsn_t committed_lsn; /* its commit LSN */
    bool txn_open;          /* taken records of a transaction whose LAST is not taken */
    uint32_t txn_xid;
    rt_lsn_t txn_lsn;
    uint64_t txn_nrecs;
    rt_lsn_t prev_lsn; /* commit LSN of the last transaction taken */
    s_end_t *ends;     /* transactions taken, not yet known stored (a FIFO) */
    size_t ends_head, ends_len, ends_cap;
    s_meta_t hold[S_HOLD]; /* live records past a gap */
    s_seen_t seen[S_SEEN];
    uint64_t live_last; /* last seq on the live stream (this connection) */

    /* ACKs. */
    uint64_t acked_sent; /* last seq sent in an ACK */

    /* What it saw. */
    uint64_t first_seq, records;
    uint64_t gaps, dups, back, mismatch, order, errors, live_drops, fetches_sent, reconnects;
    uint64_t hist[S_BUCKETS];
    uint64_t hist_n;
    int64_t max_us;
    bool fatal; /* give up (trimmed) */
} s_sim_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static uint64_t s_fnv(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void s_err(s_sim_t *self, const char *fmt, ...) RT_PRINTF(2, 3);

/* Logs a problem on stderr (the first 20 in full, then every 1000th). */
static void s_err(s_sim_t *self, const char *fmt, ...)
{
    static uint64_t n;
    if (++n > 20 && n % 1000 != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "simsub %s: ", self->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ---------------------------------------------------------------------------------
 * Latency histogram. */

static int s_bucket(uint64_t us)
{
    if (us < (1u << S_SUB_BITS))
        return (int)us;
    int msb = 63 - __builtin_clzll(us);
    return ((msb - S_SUB_BITS + 1) << S_SUB_BITS) +
           (int)((us >> (msb - S_SUB_BITS)) & ((1u << S_SUB_BITS) - 1));
}

/* The largest value of bucket b, in us. */
static uint64_t s_bucket_top(int b)
{
    if (b < (1 << S_SUB_BITS))
        return (uint64_t)b;
    int msb = (b >> S_SUB_BITS) + S_SUB_BITS - 1;
    uint64_t low =
        ((uint64_t)1 << msb) | ((uint64_t)(b & ((1 << S_SUB_BITS) - 1)) << (msb - S_SUB_BITS));
    return low + ((uint64_t)1 << (msb - S_SUB_BITS)) - 1;
}

static void s_sample(s_sim_t *self, int64_t us, uint64_t weight)
{
    if (us < 0)
        us = 0;
    if (us > self->max_us)
        self->max_us = us;
    self->hist[s_bucket((uint64_t)us)] += weight;
    self->hist_n += weight;
}

static double s_percentile_ms(const s_sim_t *self, double p)
{
    if (self->hist_n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)self->hist_n + 0.999999), sum = 0;
    if (want < 1)
        want = 1;
    for (int b = 0; b < S_BUCKETS; b++) {
        sum += self->hist[b];
        if (sum >= want) {
            uint64_t top = s_bucket_top(b);
            return (double)(top < (uint64_t)self->max_us ? top : (uint64_t)self->max_us) / 1000.0;
        }
    }
    return (double)self->max_us / 1000.0;
}

/* ---------------------------------------------------------------------------------
 * Sending. */

static void s_send(s_sim_t *self, const rt_msg_t *msg)
{
    if (rt_client_send(&self->c, msg) == RT_EPROTO)
        self->errors++;
}

static void s_send_ack(s_sim_t *self, int64_t now)
{
    rt_msg_t m = {.type = RT_MSG_ACK,
                  .seq = self->committed,
                  .state = rt_client_sub_state(&self->c, self->paused, self->expected),
                  .commit_ts = self->committed_ts,
                  .applied_at = self->committed_at,
                  .text = ""};
    if (rt_client_ack(&self->c, &m, now) == RT_EPROTO)
        self->errors++;
    self->acked_sent = self->committed;
}

/* ---------------------------------------------------------------------------------
 * Taking records. */

/* Forgets everything not acknowledged-worthy: the next record to take is the one after
 * the last committed transaction (a reconnection, a new run). */
static void s_rollback(s_sim_t *self)
{
    self->expected = self->committed + 1;
    self->txn_open = false;
    self->prev_lsn = self->committed_lsn;
    self->ends_head = self->ends_len = 0;
    memset(self->hold, 0, sizeof self->hold);
    memset(self->seen, 0, sizeof self->seen);
    self->live_last = 0;
    self->reply_first = self->reply_last = self->reply_count = 0;
}

static bool s_ends_push(s_sim_t *self, const s_end_t *e)
{
    if (self->ends_head + self->ends_len == self->ends_cap) {
        if (self->ends_head > 0) {
            memmove(self->ends, self->ends + self->ends_head, self->ends_len * sizeof *e);
            self->ends_head = 0;
        } else {
            size_t cap = self->ends_cap ? self->ends_cap * 2 : 1024;
            s_end_t *n = realloc(self->ends, cap * sizeof *n);
            if (!n)
                return false;
            self->ends = n;
            self->ends_cap = cap;
        }
    }
    self->ends[self->ends_head + self->ends_len++] = *e;
    return true;
}

/* Commits, in the subscriber's sense, every taken transaction known stored. */
static void s_commit(s_sim_t *self)
{
    int64_t now_us = 0;
    while (self->ends_len > 0 && self->ends[self->ends_head].seq <= self->c.durable_head) {
        const s_end_t *e = &self->ends[self->ends_head];
        if (!now_us)
            now_us = rt_pg_now_us();
        if (self->first_seq == 0)
            self->first_seq = e->seq - e->nrecs + 1;
        self->committed = e->seq;
        self->committed_ts = e->commit_ts;
        self->committed_lsn = e->commit_lsn;
        self->committed_at = now_us;
        self->records += e->nrecs;
        if (e->commit_ts > 0)
            s_sample(self, now_us - e->commit_ts, e->nrecs);
        self->ends_head++;
        self->ends_len--;
        self->c.ack_due = true;
    }
    if (self->ends_len == 0)
        self->ends_head = 0;
}

/* Takes the record seq == expected: checks that it frames a transaction. */
static void s_take(s_sim_t *self, const s_meta_t *m)
{
    if (m->flags & RT_REC_FIRST) {
        if (self->txn_open) {
            self->order++;
            s_err(self, "seq %" PRIu64 " starts a transaction while xid %" PRIu32 " has not ended",
                  m->seq, self->txn_xid);
        }
        if (m->commit_lsn < self->prev_lsn) {
            self->order++;
            s_err(self, "seq %" PRIu64 " commits at LSN %" PRIx64 ", before the previous %" PRIx64,
                  m->seq, m->commit_lsn, self->prev_lsn);
        }
        self->txn_open = true;
        self->txn_xid = m->xid;
        self->txn_lsn = m->commit_lsn;
        self->txn_nrecs = 0;
    } else if (!self->txn_open || m->xid != self->txn_xid || m->commit_lsn != self->txn_lsn) {
        self->order++;
        s_err(self, "seq %" PRIu64 " (xid %" PRIu32 ") continues no open transaction", m->seq,
              m->xid);
        self->txn_open = true;
        self->txn_xid = m->xid;
        self->txn_lsn = m->commit_lsn;
        self->txn_nrecs = 0;
    }
    self->txn_nrecs++;
    if (m->flags & RT_REC_LAST) {
        s_end_t e = {.seq = m->seq,
                     .nrecs = self->txn_nrecs,
                     .commit_lsn = m->commit_lsn,
                     .commit_ts = m->commit_ts};
        if (!s_ends_push(self, &e)) {
            self->errors++;
            self->fatal = true;
            s_err(self, "out of memory");
        }
        self->txn_open = false;
        self->prev_lsn = m->commit_lsn;
    }
    self->expected++;
}

/* A record that arrived, live or fetched (stored). */
static void s_on_record(s_sim_t *self, const void *data, size_t len, bool fetched,
                        const rt_msg_t *live)
{
    const rt_record_t *rec;
    if (rt_record_decode(self->dec, data, len, &rec) != RT_OK) {
        self->errors++;
        s_err(self, "a REC that does not decode (%zu bytes)", len);
        return;
    }
    if (self->state != S_STREAMING)
        return;
    uint64_t seq = rec->seq;
    /* Order on its channel. */
    if (fetched) {
        if (self->reply_count > 0 && seq != self->reply_last + 1) {
            if (seq == self->reply_last)
                self->dups++;
            else if (seq < self->reply_last)
                self->back++;
            else
                self->gaps++;
            s_err(self, "FETCH answer: seq %" PRIu64 " after %" PRIu64, seq, self->reply_last);
        }
        if (self->reply_count == 0)
            self->reply_first = seq;
        self->reply_last = seq;
        self->reply_count++;
        rt_client_fetched_record(&self->c, seq, len, rt_mono_ms());
    } else {
        if (self->live_last && seq <= self->live_last) {
            if (seq == self->live_last)
                self->dups++;
            else
                self->back++;
            s_err(self, "live stream: seq %" PRIu64 " after %" PRIu64, seq, self->live_last);
        } else if (self->live_last && seq > self->live_last + 1) {
            self->live_drops++;
        }
        self->live_last = seq;
        if (!live && seq > self->c.durable_head)
            self->c.durable_head = seq; /* a publisher without runs publishes stored records */
    }
    /* The same seq twice: the same bytes. */
    uint64_t h = s_fnv(data, len);
    s_seen_t *sn = &self->seen[seq % S_SEEN];
    if (sn->seq == seq && sn->hash != h) {
        self->mismatch++;
        s_err(self, "seq %" PRIu64 " came twice with different bytes", seq);
    }
    sn->seq = seq;
    sn->hash = h;

    if (self->paused || seq < self->expected)
        return; /* paused: applies nothing; below: taken already */
    s_meta_t m = {.seq = seq,
                  .flags = rec->flags,
                  .xid = rec->xid,
                  .commit_lsn = rec->commit_lsn,
                  .commit_ts = rec->commit_ts};
    if (seq > self->expected) {
        if (seq - self->expected < S_HOLD)
            self->hold[seq % S_HOLD] = m; /* past a gap: taken once FETCH filled it */
        return;
    }
    s_take(self, &m);
    s_meta_t *h2;
    while ((h2 = &self->hold[self->expected % S_HOLD])->seq == self->expected) {
        s_meta_t next = *h2;
        h2->seq = 0;
        s_take(self, &next);
    }
}

/* ---------------------------------------------------------------------------------
 * The connection. */

static void s_close(s_sim_t *self)
{
    zsock_destroy(&self->c.dealer);
    zsock_destroy(&self->c.sub);
}

static void s_link_lost(s_sim_t *self, const char *why, int64_t now)
{
    self->reconnects++;
    s_rollback(self);
    rt_client_lost(&self->c, why, now);
    self->state = S_DOWN;
}

static int s_connect(s_sim_t *self, int64_t now)
{
    int rc = rt_client_connect(&self->c, now);
    if (rc == RT_OK)
        self->state = S_PINGING;
    return rc;
}

/* The publisher restarted: start over from what was acknowledged, at once. */
static void s_restarted(s_sim_t *self, int64_t now)
{
    s_link_lost(self, "the publisher restarted (another run id)", now);
    rt_client_restart(&self->c, now);
}

static void s_on_welcome(s_sim_t *self, const rt_msg_t *m, int64_t now)
{
    if (self->state != S_HELLO)
        return;
    if (self->committed + 1 < m->first_seq) {
        self->errors++;
        self->fatal = true;
        s_err(self, "the outbox starts at seq %" PRIu64 ", this subscriber needs %" PRIu64,
              m->first_seq, self->committed + 1);
        return;
    }
    if (rt_client_subscribe(&self->c, m->endpoint) != RT_OK) {
        s_link_lost(self, "the PUB endpoint cannot be used", now);
        return;
    }
    rt_client_welcome(&self->c, m);
    self->paused = m->paused;
    self->state = S_STREAMING;
    self->c.last_ack_ms = now;
    if (!self->ready_logged) {
        fprintf(stderr,
                "simsub %s ready: source %s, outbox seq %" PRIu64 "..%" PRIu64 ", from seq %" PRIu64
                ", PUB %s\n",
                self->name, m->source, m->first_seq, m->head_seq, self->committed + 1,
                self->pub ? self->pub : m->endpoint);
        self->ready_logged = true;
    }
}

/* What a message of the publisher's run says: head is stored. Another run: the
 * publisher restarted; start over from what was acknowledged. False then. */
static bool s_note_run(s_sim_t *self, uint64_t run_id, uint64_t head, int64_t now)
{
    if (rt_client_note_run(&self->c, run_id, head))
        return true;
    s_restarted(self, now);
    return false;
}

static void s_on_fetched(s_sim_t *self, const rt_msg_t *m, int64_t now)
{
    /* The answer's records: dense from from_seq to last_seq. */
    bool ok = m->last_seq == 0 ? self->reply_count == 0
                               : self->reply_count == m->last_seq - m->seq + 1 &&
                                     self->reply_first == m->seq && self->reply_last == m->last_seq;
    if (!ok) {
        self->gaps++;
        s_err(self,
              "FETCHED{%" PRIu64 ", %" PRIu64 "} ends an answer of %" PRIu64 " record(s), %" PRIu64
              "..%" PRIu64,
              m->seq, m->last_seq, self->reply_count, self->reply_first, self->reply_last);
    }
    self->reply_first = self->reply_last = self->reply_count = 0;
    if (!rt_client_fetched(&self->c, m, now))
        s_restarted(self, now);
}

static void s_on_msg(void *ctx, rt_msg_t *m, int64_t now)
{
    s_sim_t *self = ctx;
    switch (m->type) {
    case RT_MSG_PONG:
        if (self->state == S_PINGING) {
            free(self->source);
            self->source = strdup(m->source);
            rt_msg_t h = {.type = RT_MSG_HELLO, .name = (char *)self->name, .seq = self->committed};
            s_send(self, &h);
            self->state = S_HELLO;
        }
        break;
    case RT_MSG_WELCOME: s_on_welcome(self, m, now); break;
    case RT_MSG_HUGZ:
        if (self->state == S_STREAMING)
            (void)s_note_run(self, m->run_id, m->head_seq, now);
        break;
    case RT_MSG_FETCHED:
        if (self->state == S_STREAMING)
            s_on_fetched(self, m, now);
        break;
    case RT_MSG_PAUSE:
    case RT_MSG_RESUME:
        self->paused = m->type == RT_MSG_PAUSE;
        if (self->paused) {
            s_rollback(self);
            rt_fetch_window_forget(&self->c.fetch);
        } else {
            rt_fetch_window_reset(&self->c.fetch);
        }
        s_send_ack(self, now);
        break;
    case RT_MSG_ERROR:
        self->errors++;
        s_err(self, "the publisher answered ERROR %" PRId64 ": %s", m->code, m->text);
        if (m->code == RT_ETRIMMED)
            self->fatal = true;
        break;
    default:
        self->errors++;
        s_err(self, "an unexpected %s from the publisher", rt_msg_type_name(m->type));
        break;
    }
}

static void s_hook_record(void *ctx, zmq_msg_t *frame, bool from_dealer, const rt_msg_t *live,
                          int64_t now)
{
    s_sim_t *self = ctx;
    if (!live || self->state != S_STREAMING || s_note_run(self, live->run_id, live->head_seq, now))
        s_on_record(self, zmq_msg_data(frame), zmq_msg_size(frame), from_dealer, live);
}

static void s_hook_bad(void *ctx, const char *why)
{
    s_sim_t *self = ctx;
    self->errors++;
    s_err(self, "%s", why);
}

static const rt_client_hooks_t s_hooks = {
    .record = s_hook_record, .message = s_on_msg, .bad = s_hook_bad};

/* ---------------------------------------------------------------------------------
 * Timers. */

static void s_maybe_fetch(s_sim_t *self, int64_t now)
{
    if (self->paused)
        return;
    self->fetches_sent +=
        (uint64_t)rt_client_fetch(&self->c, self->expected, self->c.known_head, false, now);
}

static void s_timers(s_sim_t *self, int64_t now)
{
    switch (self->state) {
    case S_DOWN:
        if (rt_client_reconnect_due(&self->c, now) && s_connect(self, now) != RT_OK) {
            self->errors++;
            self->fatal = true;
        }
        break;
    case S_PINGING: rt_client_ping(&self->c, now); break;
    case S_HELLO: break;
    case S_STREAMING:
        s_commit(self);
        s_maybe_fetch(self, now);
        if (rt_client_ack_due(&self->c, now))
            s_send_ack(self, now);
        break;
    }
    const char *why = self->state != S_DOWN ? rt_client_silence(&self->c, now) : NULL;
    if (why)
        s_link_lost(self, why, now);
}

/* ---------------------------------------------------------------------------------
 * Main. */

static long s_vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: rt_simsub --name NAME [--cert SECRET --publisher-key CERT] "
                    "[--pub ENDPOINT] [--from SEQ] [--until SEQ] [--seconds N] ENDPOINT\n");
    return 2;
}

int main(int argc, char **argv)
{
    static s_sim_t sim; /* large (histogram, rings): not on the stack */
    s_sim_t *self = &sim;
    long seconds = 0;
    const char *publisher_key = NULL;
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"cert", required_argument, NULL, 'c'},
                                         {"publisher-key", required_argument, NULL, 'k'},
                                         {"pub", required_argument, NULL, 'p'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"publisher", required_argument, NULL, 'P'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': self->name = optarg; break;
        case 'c':
            if (!(self->cert = rt_curve_load_secret(optarg)))
                return 2;
            break;
        case 'k': publisher_key = optarg; break;
        case 'p': self->pub = optarg; break;
        case 'f': self->committed = strtoull(optarg, NULL, 10); break;
        case 'u': self->until = strtoull(optarg, NULL, 10); break;
        case 's': seconds = strtol(optarg, NULL, 10); break;
        case 'P': self->publisher = optarg; break;
        default: return s_usage();
        }
    }
    if (optind < argc && !self->publisher)
        self->publisher = argv[optind++];
    if (!self->name || !rt_name_ok(self->name) || !self->publisher || optind != argc ||
        (!self->cert != !publisher_key) || seconds < 0)
        return s_usage();
    if (publisher_key) {
        if (rt_curve_load_public(publisher_key, self->server_key) != RT_OK)
            return 2;
        self->curve = true;
    }

    zsys_handler_set(NULL);
    zsys_set_io_threads(1);
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    self->dec = rt_record_decoder_new();
    if (!self->dec)
        return 1;
    rt_client_init(&self->c, self->publisher, self->name, self->pub, self->cert,
                   self->curve ? self->server_key : NULL);
    self->state = S_DOWN;
    self->committed_lsn = 0;
    s_rollback(self);
    int64_t start = rt_mono_ms();
    int64_t end = seconds ? start + seconds * 1000 : INT64_MAX;
    bool until_done = false;
    while (!s_stop && !self->fatal) {
        int64_t now = rt_mono_ms();
        if (now >= end)
            break;
        s_timers(self, now);
        if (self->until && self->committed >= self->until && self->state == S_STREAMING) {
            s_send_ack(self, now);
            until_done = true;
            break;
        }
        zmq_pollitem_t items[2];
        int n = rt_client_poll_items(&self->c, items);
        if (n == 0) {
            zclock_sleep(S_POLL_MS / 2);
            continue;
        }
        if (zmq_poll(items, n, S_POLL_MS) <= 0)
            continue;
        now = rt_mono_ms();
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            uint64_t epoch = self->reconnects;
            for (int k = 0; k < S_RECV_BATCH && !s_stop && self->reconnects == epoch; k++)
                if (!rt_client_recv(&self->c, items[i].socket, &s_hooks, self, now))
                    break;
            if (self->reconnects != epoch)
                break; /* the sockets were closed */
        }
        if (self->state == S_STREAMING)
            s_commit(self);
    }
    /* A last ACK of what it has, flushed before the socket closes. */
    if (self->state == S_STREAMING && !until_done && self->committed != self->acked_sent)
        s_send_ack(self, rt_mono_ms());
    if (self->c.dealer)
        zsock_set_linger(self->c.dealer, 1000);
    s_close(self);
    if (self->until && self->committed < self->until) {
        self->errors++;
        s_err(self, "ended at seq %" PRIu64 " before --until %" PRIu64, self->committed,
              self->until);
    }
    printf("simsub %s records=%" PRIu64 " first_seq=%" PRIu64 " last_seq=%" PRIu64 " gaps=%" PRIu64
           " dups=%" PRIu64 " back=%" PRIu64 " mismatch=%" PRIu64 " order=%" PRIu64
           " errors=%" PRIu64 " live_drops=%" PRIu64 " fetches=%" PRIu64 " reconnects=%" PRIu64
           " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f rss_kb=%ld\n",
           self->name, self->records, self->first_seq, self->committed, self->gaps, self->dups,
           self->back, self->mismatch, self->order, self->errors, self->live_drops,
           self->fetches_sent, self->reconnects, s_percentile_ms(self, 0.50),
           s_percentile_ms(self, 0.99), (double)self->max_us / 1000.0, s_vmhwm_kb());
    fflush(stdout);
    bool bad =
        self->gaps || self->dups || self->back || self->mismatch || self->order || self->errors;
    rt_record_decoder_destroy(&self->dec);
    free(self->ends);
    free(self->source);
    zcert_destroy(&self->cert);
    return bad ? 1 : 0;
}
