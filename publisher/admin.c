/* publisher/admin.c - the admin verbs: PING, STATUS, PAUSE, RESUME, FORGET, REPLAY.
 *
 * One {type, handler} table answers rtctl over the ROUTER (stream.c sends the reply
 * back to the peer) and the HTTP side in-process (web.c), both through rt_admin_call.
 * A handler writes its one reply into a buffer: PONG, STATUS_REPLY, OK{text} or
 * ERROR{code, text}. PAUSE, RESUME and a REPLAY are also sent on to the subscriber
 * named (its routing id) through the stream. */
#include "admin.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stream_int.h"
#include "wire.h"

/* A subscriber heard from within this long is connected. */
#define ONLINE_MS 5000
/* Status walks at most this many records per subscriber to sum its lag in bytes,
 * and extrapolates beyond. */
#define LAG_SCAN_RECORDS 100000

/* The reply to an admin verb: one encoded frame (OK, ERROR, PONG or STATUS_REPLY). */
typedef struct {
    void *frame; /* malloc'd; NULL while none, or when it could not be built */
    size_t len;
} s_reply_t;

static void s_reply_msg(s_reply_t *reply, const rt_msg_t *msg)
{
    free(reply->frame);
    if (rt_msg_encode(msg, &reply->frame, &reply->len) < 0)
        reply->frame = NULL;
}

/* An OK{text} reply. */
static void s_reply_ok(s_reply_t *reply, const char *text)
{
    rt_msg_t m = {.type = RT_MSG_OK, .text = (char *)text};
    s_reply_msg(reply, &m);
}

static void s_reply_error(s_reply_t *reply, int code, const char *text)
{
    rt_msg_t m = {.type = RT_MSG_ERROR, .code = code, .text = (char *)text};
    s_reply_msg(reply, &m);
}

static int s_cmp_name(const void *a, const void *b)
{
    return strcmp(((const rt_status_sub_t *)a)->name, ((const rt_status_sub_t *)b)->name);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Looks up the subscriber an admin verb names; answers ERROR{RT_ENOTFOUND} naming the
 * known ones when there is none. */
static rt_stream_sub_t *s_admin_sub(rt_stream_t *self, s_reply_t *reply, const char *name)
{
    rt_stream_sub_t *s = rt_stream_sub(self, name, false);
    if (s)
        return s;
    char known[1024] = "";
    size_t n = 0, count = 0, total = zhashx_size(self->subs);
    const char **names = calloc(total ? total : 1, sizeof *names);
    for (rt_stream_sub_t *k = zhashx_first(self->subs); k && names; k = zhashx_next(self->subs))
        names[count++] = k->stored.name;
    if (names)
        qsort(names, count, sizeof *names, s_cmp_str);
    for (size_t i = 0; i < count && n < sizeof known - 1; i++) {
        int w = snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", names[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    free(names);
    if (n >= sizeof known)
        n = sizeof known - 1;
    char text[1400];
    snprintf(text, sizeof text, "no subscriber named \"%s\" (known: %s)", name, n ? known : "none");
    s_reply_error(reply, RT_ENOTFOUND, text);
    return NULL;
}

static bool s_online(const rt_stream_sub_t *s, int64_t now)
{
    return s->last_seen_ms && now - s->last_seen_ms < ONLINE_MS;
}

static void s_on_pause(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    bool pause = m->type == RT_MSG_PAUSE;
    rt_stream_sub_t *s = s_admin_sub(self, reply, m->name);
    if (!s)
        return;
    char text[300];
    if (s->stored.enabled == !pause) {
        snprintf(text, sizeof text, "subscriber %s was already %s", m->name,
                 pause ? "paused" : "running (not paused)");
        s_reply_ok(reply, text);
        return;
    }
    s->stored.enabled = !pause;
    s->dirty = true;
    if (rt_outbox_sub_put(self->outbox, &s->stored) < 0) {
        s->stored.enabled = pause;
        s_reply_error(reply, RT_EIO, "the outbox could not store the change");
        return;
    }
    s->dirty = false;
    rt_msg_t n = {.type = m->type, .name = m->name};
    bool told = rt_stream_notify(self, m->name, &n);
    rt_info("subscriber %s %s by rtctl at acked seq %llu", m->name, pause ? "paused" : "resumed",
            (unsigned long long)s->stored.acked_seq);
    if (pause)
        snprintf(text, sizeof text,
                 "paused %s at acked seq %llu%s; it no longer holds back trimming", m->name,
                 (unsigned long long)s->stored.acked_seq,
                 told ? "" : " (not connected: it is told when it connects)");
    else
        snprintf(text, sizeof text, "resumed %s: it catches up from seq %llu (head %llu)%s",
                 m->name, (unsigned long long)(s->stored.acked_seq + 1),
                 (unsigned long long)rt_outbox_position(self->outbox).head_seq,
                 told ? "" : " when it connects");
    s_reply_ok(reply, text);
}

/* RESYNC{name, tables} with tables, one schema.table per line: handed to the subscriber,
 * which must be connected (it records the request on its replica and copies those
 * tables while it applies the others). */
static void s_on_resync_tables(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    size_t n = 0;
    for (const char *line = m->text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *dot = memchr(line, '.', len);
        if (!dot || dot == line || dot == line + len - 1 || len > 2 * 63 + 1) {
            char text[300];
            snprintf(text, sizeof text, "\"%.*s\" is not SCHEMA.TABLE",
                     (int)(len < 200 ? len : 200), line);
            s_reply_error(reply, RT_EINVAL, text);
            return;
        }
        n++;
        line = end ? end + 1 : line + len;
    }
    if (!s_admin_sub(self, reply, m->name))
        return;
    rt_msg_t r = {.type = RT_MSG_RESYNC, .name = m->name, .text = m->text};
    char text[300];
    if (!rt_stream_notify(self, m->name, &r)) {
        snprintf(text, sizeof text,
                 "%s is not connected: a resync of chosen tables is carried out by a running "
                 "subscriber; start it and ask again",
                 m->name);
        s_reply_error(reply, RT_EAGAIN, text);
        return;
    }
    snprintf(text, sizeof text,
             "%s copies %zu table%s again under a new snapshot while it applies the others",
             m->name, n, n == 1 ? "" : "s");
    rt_info("subscriber %s: resync of %zu tables requested", m->name, n);
    s_reply_ok(reply, text);
}

/* RESYNC{name, tables}: the subscriber copies every table again (tables ""), at once if it
 * is connected, else when it connects next (the request is stored with it). */
static void s_on_resync(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    if (m->text && m->text[0]) {
        s_on_resync_tables(self, m, reply);
        return;
    }
    rt_stream_sub_t *s = s_admin_sub(self, reply, m->name);
    if (!s)
        return;
    s->stored.resync = true;
    s->dirty = true;
    if (rt_outbox_sub_put(self->outbox, &s->stored) < 0) {
        s_reply_error(reply, RT_EIO, "the outbox could not store the request");
        return;
    }
    s->dirty = false;
    rt_msg_t n = {.type = RT_MSG_RESYNC, .name = m->name, .text = ""};
    bool told = rt_stream_notify(self, m->name, &n);
    char text[300];
    snprintf(text, sizeof text,
             "%s copies every table again under a new snapshot, then streams from there%s", m->name,
             told ? "" : " (not connected: it does when it connects)");
    rt_info("subscriber %s: resync requested%s", m->name, told ? "" : " (not connected)");
    s_reply_ok(reply, text);
}

/* SKIP{name, seq}: handed to the subscriber, which must be connected (it is the one that
 * stopped at that record's DDL, retrying). */
static void s_on_skip(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    if (!s_admin_sub(self, reply, m->name))
        return;
    rt_msg_t r = {.type = RT_MSG_SKIP, .name = m->name, .seq = m->seq};
    char text[300];
    if (!rt_stream_notify(self, m->name, &r)) {
        snprintf(text, sizeof text,
                 "%s is not connected: a skip is carried out by a running subscriber; start it "
                 "and ask again",
                 m->name);
        s_reply_error(reply, RT_EAGAIN, text);
        return;
    }
    snprintf(text, sizeof text,
             "%s steps over the DDL of seq %llu when it applies that record (its rows are "
             "applied)",
             m->name, (unsigned long long)m->seq);
    rt_info("subscriber %s: skip of the DDL of seq %llu requested", m->name,
            (unsigned long long)m->seq);
    s_reply_ok(reply, text);
}

static void s_on_forget(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    if (m->flags & ~(uint64_t)RT_FORGET_FORCE) {
        s_reply_error(reply, RT_EINVAL, "FORGET with unknown flags");
        return;
    }
    rt_stream_sub_t *s = s_admin_sub(self, reply, m->name);
    if (!s)
        return;
    int64_t now = rt_mono_ms();
    char text[300];
    if (s_online(s, now) && s->stored.enabled && !(m->flags & RT_FORGET_FORCE)) {
        snprintf(text, sizeof text,
                 "subscriber %s is connected and active (last heard %lld ms ago): stop it or "
                 "pause it first, or use --force",
                 m->name, (long long)(now - s->last_seen_ms));
        s_reply_error(reply, RT_EINVAL, text);
        return;
    }
    int rc = rt_outbox_sub_delete(self->outbox, m->name);
    if (rc < 0 && rc != RT_ENOTFOUND) {
        s_reply_error(reply, RT_EIO, "the outbox could not delete the subscriber");
        return;
    }
    uint64_t acked = s->stored.acked_seq;
    zhashx_delete(self->subs, m->name);
    rt_info("subscriber %s forgotten by rtctl (it had acked seq %llu)", m->name,
            (unsigned long long)acked);
    snprintf(text, sizeof text,
             "forgot %s (acked seq %llu): it no longer holds back trimming; if it connects "
             "again it is registered anew",
             m->name, (unsigned long long)acked);
    s_reply_ok(reply, text);
}

/* What a walk over a range of records found. */
typedef struct {
    rt_stream_t *self;
    uint64_t to; /* last seq to count */
    bool decode; /* count transactions and rows (decodes each record) */
    uint64_t records, bytes, txns, rows;
    uint64_t last;    /* last seq seen */
    uint8_t flags;    /* flags of the first record seen */
    int64_t first_ts; /* commit time of the first record seen */
    bool bad;         /* a record did not decode */
} s_scan_t;

static int s_scan_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_scan_t *sc = arg;
    if (seq > sc->to)
        return 1;
    if (sc->decode || sc->records == 0) {
        const rt_record_t *rec;
        if (rt_record_decode(sc->self->dec, data, len, &rec) != RT_OK) {
            sc->bad = true;
            return 1;
        }
        if (sc->records == 0) {
            sc->flags = rec->flags;
            sc->first_ts = rec->commit_ts;
        }
        if (sc->decode) {
            /* A record of sequences is no source transaction. */
            if ((rec->flags & RT_REC_LAST) && !rt_record_is_sequences(rec))
                sc->txns++;
            for (uint32_t i = 0; i < rec->nchanges; i++)
                if (strchr("TQL", rec->changes[i].op) == NULL)
                    sc->rows++;
        }
    }
    sc->records++;
    sc->bytes += len;
    sc->last = seq;
    return 0;
}

/* Walks seqs from..to (at most max records, 0: all). 0, RT_ETRIMMED, RT_EIO, RT_EPROTO. */
static int s_scan(rt_stream_t *self, uint64_t from, uint64_t to, size_t max, bool decode,
                  s_scan_t *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->self = self;
    sc->to = to;
    sc->decode = decode;
    if (from > to)
        return RT_OK;
    int rc = rt_outbox_read(self->outbox, from, max, 0, s_scan_one, sc);
    if (rc < 0)
        return rc;
    return sc->bad ? RT_EPROTO : RT_OK;
}

/* Flags and commit time of record seq. */
static int s_record_at(rt_stream_t *self, uint64_t seq, uint8_t *flags, int64_t *ts)
{
    s_scan_t sc;
    int rc = s_scan(self, seq, seq, 1, false, &sc);
    if (rc == RT_OK && sc.records != 1)
        rc = RT_ENOTFOUND;
    if (rc == RT_OK) {
        *flags = sc.flags;
        *ts = sc.first_ts;
    }
    return rc;
}

/* The first record (from first to head) whose commit time is >= ts, by bisection:
 * records are in commit order. RT_ENOTFOUND if none. */
static int s_find_since(rt_stream_t *self, int64_t ts, uint64_t *seq)
{
    uint64_t lo = rt_outbox_first_seq(self->outbox);
    uint64_t hi = rt_outbox_position(self->outbox).head_seq + 1; /* answer in [lo, hi] */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint8_t flags;
        int64_t t;
        int rc = s_record_at(self, mid, &flags, &t);
        if (rc < 0)
            return rc;
        if (t >= ts)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo > rt_outbox_position(self->outbox).head_seq)
        return RT_ENOTFOUND;
    *seq = lo;
    return RT_OK;
}

/* Formats PostgreSQL-epoch µs as "YYYY-MM-DD HH:MM:SS.mmm UTC". */
static void s_ts_text(int64_t pg_us, char *buf, size_t size)
{
    time_t t = (time_t)(rt_pg_to_unix_us(pg_us) / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[40];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03d UTC", day, (int)((rt_pg_to_unix_us(pg_us) / 1000) % 1000));
}

static void s_on_replay(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    char text[600];
    bool dry = m->flags & RT_REPLAY_DRY_RUN, reset = m->flags & RT_REPLAY_RESET;
    if (m->flags & ~(uint64_t)RT_REPLAY_FLAGS) {
        s_reply_error(reply, RT_EINVAL, "REPLAY with unknown flags");
        return;
    }
    rt_stream_sub_t *s = s_admin_sub(self, reply, m->name);
    if (!s)
        return;
    uint64_t first = rt_outbox_first_seq(self->outbox);
    uint64_t head = rt_outbox_position(self->outbox).head_seq;
    if (first > head) {
        snprintf(text, sizeof text, "the outbox is empty (head seq %llu): nothing to replay",
                 (unsigned long long)head);
        s_reply_error(reply, RT_ENOTFOUND, text);
        return;
    }
    uint64_t from = m->seq ? m->seq : first, to = m->last_seq ? m->last_seq : head;
    if (m->flags & RT_REPLAY_SINCE) {
        char when[64];
        s_ts_text(m->commit_ts, when, sizeof when);
        int rc = s_find_since(self, m->commit_ts, &from);
        if (rc == RT_ENOTFOUND) {
            snprintf(text, sizeof text,
                     "no record in the outbox (seqs %llu..%llu) was committed at or after %s",
                     (unsigned long long)first, (unsigned long long)head, when);
            s_reply_error(reply, RT_ENOTFOUND, text);
            return;
        }
        if (rc < 0) {
            s_reply_error(reply, rc, "the outbox could not be read");
            return;
        }
    }
    if (from < first) {
        snprintf(text, sizeof text,
                 "records %llu..%llu were trimmed from the outbox; seqs %llu..%llu are still "
                 "available",
                 (unsigned long long)from, (unsigned long long)(first - 1),
                 (unsigned long long)first, (unsigned long long)head);
        s_reply_error(reply, RT_ETRIMMED, text);
        return;
    }
    if (to > head || from > to) {
        snprintf(text, sizeof text,
                 "range %llu..%llu is not in the outbox: seqs %llu..%llu are available",
                 (unsigned long long)from, (unsigned long long)to, (unsigned long long)first,
                 (unsigned long long)head);
        s_reply_error(reply, RT_EINVAL, text);
        return;
    }
    /* A replay starts with a transaction's first record. */
    uint64_t asked = from;
    for (;;) {
        uint8_t flags;
        int64_t ts;
        int rc = s_record_at(self, from, &flags, &ts);
        if (rc < 0) {
            s_reply_error(reply, RT_EIO, "the outbox could not be read");
            return;
        }
        if (flags & RT_REC_FIRST)
            break;
        if (from == first) {
            snprintf(text, sizeof text,
                     "seq %llu is inside a transaction whose first records were trimmed "
                     "(oldest kept: %llu)",
                     (unsigned long long)asked, (unsigned long long)first);
            s_reply_error(reply, RT_ETRIMMED, text);
            return;
        }
        from--;
    }
    if (reset && from - 1 > s->stored.acked_seq) {
        snprintf(text, sizeof text,
                 "--reset from seq %llu would skip seqs %llu..%llu that %s has not acknowledged "
                 "(acked seq %llu)",
                 (unsigned long long)from, (unsigned long long)(s->stored.acked_seq + 1),
                 (unsigned long long)(from - 1), m->name, (unsigned long long)s->stored.acked_seq);
        s_reply_error(reply, RT_EINVAL, text);
        return;
    }
    /* What goes: everything with reset; without, only what it has not applied. */
    uint64_t send_from = reset || from > s->stored.acked_seq ? from : s->stored.acked_seq + 1;
    s_scan_t all, go;
    int rc = s_scan(self, from, to, 0, true, &all);
    if (rc == RT_OK)
        rc = s_scan(self, send_from, to, 0, true, &go);
    if (rc < 0) {
        s_reply_error(reply, rc == RT_ETRIMMED ? RT_ETRIMMED : RT_EIO,
                      "the outbox could not be read for the replay");
        return;
    }
    char moved[64] = "";
    if (from != asked)
        snprintf(moved, sizeof moved, " (moved back from %llu to its transaction's start)",
                 (unsigned long long)asked);
    char skipped[200] = "";
    if (all.records > go.records)
        snprintf(skipped, sizeof skipped,
                 "; %llu records already applied by %s (acked seq %llu) "
                 "are skipped",
                 (unsigned long long)(all.records - go.records), m->name,
                 (unsigned long long)s->stored.acked_seq);
    const char *what = dry ? "would send" : "sending";
    int n = snprintf(text, sizeof text,
                     "replay to %s of seqs %llu..%llu%s: %s %llu records, %llu transactions, "
                     "%llu rows (%.1f KiB)%s%s",
                     m->name, (unsigned long long)from, (unsigned long long)to, moved, what,
                     (unsigned long long)go.records, (unsigned long long)go.txns,
                     (unsigned long long)go.rows, go.bytes / 1024.0, skipped,
                     reset ? "; its progress is moved back to seq " : "");
    if (reset && n > 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n,
                 "%llu first and the range re-applied with "
                 "apply_remote",
                 (unsigned long long)(from - 1));
    if (dry) {
        s_reply_ok(reply, text);
        return;
    }
    rt_msg_t note = {.type = RT_MSG_REPLAY,
                     .name = m->name,
                     .seq = from,
                     .last_seq = to,
                     .flags = m->flags & RT_REPLAY_RESET};
    bool online = s_online(s, rt_mono_ms());
    if (!online || !rt_stream_notify(self, m->name, &note)) {
        if (reset) {
            snprintf(text, sizeof text,
                     "subscriber %s is not connected: a replay with --reset needs it running",
                     m->name);
            s_reply_error(reply, RT_EAGAIN, text);
            return;
        }
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used,
                 "; %s is not connected: it catches up when it "
                 "connects",
                 m->name);
    }
    if (reset) {
        s->stored.acked_seq = from - 1;
        s->reset_from = from;
        s->dirty = true;
    }
    if (!s->stored.enabled) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used,
                 "; %s is paused: the records go once it is "
                 "resumed",
                 m->name);
    }
    rt_info("%s", text);
    s_reply_ok(reply, text);
}

/* What a capture (or a relay's taking from its publisher) counts, and its state. */
static void s_capture_fill(rt_status_t *st, uint64_t txns, uint64_t rows, bool blocked,
                           bool connected)
{
    st->captured_txns = txns;
    st->captured_rows = rows;
    st->capture_state = blocked     ? RT_CAPTURE_BLOCKED
                        : connected ? RT_CAPTURE_STREAMING
                                    : RT_CAPTURE_DISCONNECTED;
}

static void s_on_status(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    (void)m;
    rt_status_t st;
    memset(&st, 0, sizeof st);
    snprintf(st.source, sizeof st.source, "%s", self->source);
    snprintf(st.slot, sizeof st.slot, "%s", self->slot);
    rt_outbox_stat_t os;
    if (rt_outbox_stat(self->outbox, &os) == 0) {
        st.first_seq = os.first_seq;
        st.head_seq = os.head_seq;
        st.records = os.records;
        st.outbox_bytes = os.used_bytes;
    }
    st.capture_state = RT_CAPTURE_NONE;
    if (self->capture) {
        rt_capture_stats_t cs = rt_capture_stats(self->capture);
        st.received_lsn = cs.received_lsn;
        st.confirmed_lsn = cs.confirmed_lsn;
        s_capture_fill(&st, cs.txns, cs.rows, cs.blocked, cs.connected);
    }
    if (self->upstream) {
        rt_stream_upstream_t up = {0};
        self->upstream(self->upstream_arg, &up);
        snprintf(st.upstream, sizeof st.upstream, "%s", up.endpoint ? up.endpoint : "");
        st.upstream_head = up.head;
        s_capture_fill(&st, up.txns, up.rows, up.blocked, up.connected);
    }
    st.now_ts = rt_pg_now_us();
    st.security = self->security;
    rt_slot_figures_t slot = rt_slot_stats_get(self->slot_stats);
    st.retained_wal_bytes = slot.retained_wal_bytes;
    st.source_lag_bytes = slot.lag_bytes;
    st.source_lag_ms = slot.lag_ms;
    st.outbox_limit_bytes =
        self->outbox_limit > INT64_MAX ? INT64_MAX : (int64_t)self->outbox_limit;
    uint8_t flags;
    if (st.first_seq <= st.head_seq) {
        if (s_record_at(self, st.first_seq, &flags, &st.oldest_ts) < 0)
            st.oldest_ts = 0;
        if (s_record_at(self, st.head_seq, &flags, &st.head_ts) < 0)
            st.head_ts = 0;
    }
    size_t n = zhashx_size(self->subs);
    st.subs = calloc(n ? n : 1, sizeof *st.subs);
    if (!st.subs)
        return;
    int64_t now = rt_mono_ms();
    for (rt_stream_sub_t *s = zhashx_first(self->subs); s; s = zhashx_next(self->subs)) {
        rt_status_sub_t *o = &st.subs[st.nsubs++];
        snprintf(o->name, sizeof o->name, "%s", s->stored.name);
        o->acked_seq = s->stored.acked_seq;
        bool online = s->last_seen_ms && now - s->last_seen_ms < 5000;
        o->state = online ? s->stored.state : RT_SUB_OFFLINE;
        if (!s->stored.enabled)
            o->state = RT_SUB_PAUSED;
        o->seen_ms_ago = s->last_seen_ms ? now - s->last_seen_ms : -1;
        o->conflicts = s->conflicts;
        o->commit_ts = s->commit_ts;
        o->applied_at = s->applied_at;
        snprintf(o->error, sizeof o->error, "%s", s->error);
        if (s->copy.tables_total) /* an initial copy, or a resync of chosen tables */
            o->copy = s->copy;
        o->lag_ms = -1;
        if (s->stored.acked_seq >= st.head_seq) {
            if (s->commit_ts && s->applied_at)
                o->lag_ms = (s->applied_at - s->commit_ts) / 1000;
            continue;
        }
        /* Behind: bytes still to apply, and the age of the oldest record it lacks. */
        uint64_t from = s->stored.acked_seq + 1;
        if (from < st.first_seq)
            continue; /* what it needs was trimmed */
        s_scan_t sc;
        if (s_scan(self, from, st.head_seq, LAG_SCAN_RECORDS, false, &sc) < 0 || !sc.records)
            continue;
        uint64_t behind = st.head_seq - s->stored.acked_seq;
        o->lag_bytes =
            sc.records >= behind ? sc.bytes : (uint64_t)((double)sc.bytes / sc.records * behind);
        o->lag_ms = (st.now_ts - sc.first_ts) / 1000;
    }
    qsort(st.subs, st.nsubs, sizeof *st.subs, s_cmp_name);
    void *frame;
    size_t len;
    if (rt_status_encode(&st, &frame, &len) == 0) {
        reply->frame = frame;
        reply->len = len;
    }
    rt_status_clear(&st);
}

static void s_on_ping(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    (void)m;
    rt_msg_t p = {.type = RT_MSG_PONG,
                  .source = self->source,
                  .head_seq = rt_outbox_position(self->outbox).head_seq};
    s_reply_msg(reply, &p);
}

/* The admin verbs: rtctl's requests over the ROUTER and the HTTP side's in-process
 * calls both go through this table. */
typedef void (*s_verb_fn)(rt_stream_t *self, const rt_msg_t *req, s_reply_t *reply);

static const struct {
    int type;     /* the request's message type */
    s_verb_fn fn; /* answers it */
    bool changes; /* changes what the publisher keeps or sends: needs an admin caller */
} s_verbs[] = {
    {RT_MSG_PING, s_on_ping, false},    {RT_MSG_STATUS, s_on_status, false},
    {RT_MSG_PAUSE, s_on_pause, true},   {RT_MSG_RESUME, s_on_pause, true},
    {RT_MSG_FORGET, s_on_forget, true}, {RT_MSG_REPLAY, s_on_replay, true},
    {RT_MSG_RESYNC, s_on_resync, true}, {RT_MSG_SKIP, s_on_skip, true},
};

int rt_admin_call_as(rt_stream_t *self, const rt_msg_t *req, const rt_admin_caller_t *who,
                     void **reply, size_t *len)
{
    for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++) {
        if (s_verbs[i].type != req->type)
            continue;
        s_reply_t r = {NULL, 0};
        const char *verb = rt_msg_type_name(req->type);
        if (s_verbs[i].changes && !who->admin) {
            char text[256];
            snprintf(text, sizeof text,
                     "%s needs an admin key (the publisher's --admin directory); %s is not one",
                     verb, who->name);
            rt_warn("admin: %s %s refused: %s is not an admin key", verb,
                    req->name ? req->name : "", who->name);
            rt_msg_t e = {.type = RT_MSG_ERROR, .code = RT_EINVAL, .text = text};
            s_reply_msg(&r, &e);
        } else {
            if (s_verbs[i].changes)
                rt_info("admin: %s %s by %s", verb, req->name ? req->name : "", who->name);
            s_verbs[i].fn(self, req, &r);
        }
        if (!r.frame)
            return RT_ENOMEM;
        *reply = r.frame;
        *len = r.len;
        return RT_OK;
    }
    return RT_EINVAL;
}

int rt_admin_call(rt_stream_t *self, const rt_msg_t *req, void **reply, size_t *len)
{
    static const rt_admin_caller_t local = {.name = "the HTTP API", .admin = true};
    return rt_admin_call_as(self, req, &local, reply, len);
}
