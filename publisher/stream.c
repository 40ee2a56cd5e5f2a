/* publisher/stream.c - the publisher's ZeroMQ side: PUB fan-out and the ROUTER conversation.
 *
 * PUB carries every durable record once, best effort, then HUGZ{head} when idle.
 * ROUTER frames are [routing id][message] (peers are DEALERs); the conversation is
 * in schemas/protocol.md: PING/PONG, HELLO/WELCOME, FETCH/FETCHED (credit-based:
 * never more records than asked), ACK, STATUS, and the admin verbs of rtctl:
 * PAUSE, RESUME, FORGET, REPLAY (answered OK{text} or ERROR{code, text}).
 * Subscribers and their acknowledgements live in the outbox's subscribers database;
 * PAUSE, RESUME and a REPLAY are also sent on to the subscriber named (its routing
 * id), and a subscriber whose ACK state disagrees with its paused flag is told
 * again, so a lost notice is repaired within an ACK interval. */
#include "stream.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "wire.h"

#define MAX_MESSAGES_PER_CALL 256
#define MAX_FETCH_RECORDS 256
#define MAX_FETCH_BYTES (8u << 20)
#define MAX_PUBLISH_BYTES (16u << 20)
#define HUGZ_INTERVAL_MS 1000
#define PERSIST_INTERVAL_MS 1000
#define TRIM_INTERVAL_MS 1000
#define TRIM_BATCH 10000
#define SAMPLES_MAX 8192
/* A subscriber heard from within this long is connected. */
#define ONLINE_MS 5000
/* Status walks at most this many records per subscriber to sum its lag in bytes,
 * and extrapolates beyond. */
#define LAG_SCAN_RECORDS 100000

/* A subscriber as the publisher knows it. */
typedef struct {
    rt_outbox_sub_t stored; /* as in the outbox */
    int64_t last_seen_ms;   /* monotonic time of its last message, 0 never */
    bool dirty;             /* stored differs from the outbox */
    uint64_t conflicts;     /* from its last ACK */
    int64_t commit_ts;      /* from its last ACK: commit time of its last applied record */
    int64_t applied_at;     /* from its last ACK: when it applied it */
    char error[RT_ERROR_TEXT_MAX + 1]; /* from its last ACK */
    uint64_t reset_from;    /* a replay with reset from this seq is under way: ACKs at or
                             * past it are old ones until one below it arrives */
} s_sub_t;

/* When a head seq became durable, for the retention window. */
typedef struct {
    uint64_t seq;
    int64_t ms;
} s_sample_t;

struct rt_stream_t {
    char *source, *slot, *pub_endpoint;
    int64_t retention_ms;
    rt_outbox_t *outbox;   /* borrowed */
    rt_capture_t *capture; /* borrowed, may be NULL */
    zsock_t *router;
    zsock_t *pub;
    zhashx_t *subs;        /* name -> s_sub_t */
    uint64_t published;    /* last seq sent on PUB */
    int64_t last_pub_ms;
    int64_t last_persist_ms;
    int64_t last_trim_ms;
    s_sample_t *samples;   /* ring of (head, time) */
    size_t nsamples, sample_start;
    uint64_t bad_frames;
    rt_record_decoder_t *dec; /* decodes records for replay and status */
};

static void s_bad_frame(rt_stream_t *self, const char *peer, const char *why)
{
    self->bad_frames++;
    if (self->bad_frames <= 10 || self->bad_frames % 1000 == 0)
        rt_warn("dropped a frame from %s: %s (%llu dropped so far)", peer ? peer : "a peer", why,
                (unsigned long long)self->bad_frames);
}

/* Sends [id][body] on the ROUTER without blocking; false if the peer is gone or full. */
static bool s_send_to(rt_stream_t *self, const char *id, size_t idlen, const void *body,
                      size_t len)
{
    void *sock = zsock_resolve(self->router);
    if (zmq_send(sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return false;
    return zmq_send(sock, body, len, ZMQ_DONTWAIT) >= 0;
}

/* Sends a reply frame to [id]; a reply that cannot be sent is dropped: the peer asks
 * again. */
static void s_send_reply(rt_stream_t *self, const char *id, size_t idlen, const void *frame,
                         size_t len)
{
    if (!s_send_to(self, id, idlen, frame, len))
        rt_debug("reply to %.*s not sent: %s", (int)idlen, id, zmq_strerror(zmq_errno()));
}

static void s_send_msg(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *msg)
{
    void *frame;
    size_t len;
    if (rt_msg_encode(msg, &frame, &len) < 0)
        return;
    s_send_reply(self, id, idlen, frame, len);
    free(frame);
}

static void s_send_error(rt_stream_t *self, const char *id, size_t idlen, int code,
                         const char *text)
{
    rt_msg_t m = {.type = RT_MSG_ERROR, .code = code, .text = (char *)text};
    s_send_msg(self, id, idlen, &m);
}

static s_sub_t *s_sub(rt_stream_t *self, const char *name, bool create)
{
    s_sub_t *s = zhashx_lookup(self->subs, name);
    if (s || !create)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->stored.name, sizeof s->stored.name, "%s", name);
    s->stored.enabled = true;
    s->stored.state = RT_SUB_OFFLINE;
    s->dirty = true;
    zhashx_insert(self->subs, name, s);
    return zhashx_lookup(self->subs, name);
}

/* The newest stored record: the head_seq announced to subscribers (WELCOME, FETCHED,
 * HUGZ) and the last one published or served. It is above the outbox's head_seq while
 * the chunks of a large transaction are being stored: subscribers apply them as they
 * come and commit at its last chunk. */
static uint64_t s_stored(rt_stream_t *self)
{
    return rt_outbox_next_seq(self->outbox) - 1;
}

static void s_on_hello(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    rt_outbox_pos_t pos = rt_outbox_position(self->outbox);
    uint64_t first = rt_outbox_first_seq(self->outbox);
    if (m->seq + 1 < first && first <= pos.head_seq) {
        char text[256];
        snprintf(text, sizeof text,
                 "records %llu..%llu were trimmed from the outbox (oldest kept: %llu); "
                 "subscriber %s needs a resync",
                 (unsigned long long)(m->seq + 1), (unsigned long long)(first - 1),
                 (unsigned long long)first, m->name);
        rt_warn("%s", text);
        s_send_error(self, id, idlen, RT_ETRIMMED, text);
        return;
    }
    if (m->seq > pos.head_seq) {
        char text[256];
        snprintf(text, sizeof text,
                 "subscriber %s says it applied seq %llu but the outbox ends at %llu: it was "
                 "fed by another outbox",
                 m->name, (unsigned long long)m->seq, (unsigned long long)pos.head_seq);
        rt_error("%s", text);
        s_send_error(self, id, idlen, RT_EINVAL, text);
        return;
    }
    s_sub_t *s = s_sub(self, m->name, true);
    if (!s)
        return;
    bool known = s->last_seen_ms != 0;
    if (s->reset_from && m->seq >= s->reset_from)
        rt_warn("subscriber %s reconnected at seq %llu before it carried out the replay with "
                "reset from seq %llu; run the replay again",
                m->name, (unsigned long long)m->seq, (unsigned long long)s->reset_from);
    s->reset_from = 0;
    s->stored.acked_seq = m->seq;
    s->stored.state = m->seq < pos.head_seq ? RT_SUB_CATCHING_UP : RT_SUB_STREAMING;
    s->last_seen_ms = rt_mono_ms();
    s->dirty = true;
    if (!known)
        rt_info("subscriber %s connected at seq %llu (head %llu)", m->name,
                (unsigned long long)m->seq, (unsigned long long)pos.head_seq);
    if (!s->stored.enabled)
        rt_info("subscriber %s is paused: it applies nothing until rtctl resume", m->name);
    rt_msg_t w = {.type = RT_MSG_WELCOME,
                  .source = self->source,
                  .endpoint = self->pub_endpoint,
                  .first_seq = first,
                  .head_seq = s_stored(self),
                  .paused = !s->stored.enabled};
    s_send_msg(self, id, idlen, &w);
}

typedef struct {
    rt_stream_t *self;
    const char *id;
    size_t idlen;
    uint64_t last;
} s_fetch_ctx_t;

static int s_fetch_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_fetch_ctx_t *c = arg;
    if (!s_send_to(c->self, c->id, c->idlen, data, len))
        return 1; /* the peer is gone or full: it asks again */
    c->last = seq;
    return 0;
}

static void s_on_fetch(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(idlen < 127 ? idlen : 127), id);
    s_sub_t *s = s_sub(self, name, false);
    if (s)
        s->last_seen_ms = rt_mono_ms();
    s_fetch_ctx_t ctx = {self, id, idlen, 0};
    if (m->seq == 0) {
        s_send_error(self, id, idlen, RT_EPROTO, "FETCH from seq 0: seqs start at 1");
        return;
    }
    if (!(s && !s->stored.enabled)) {
        size_t count = m->count < MAX_FETCH_RECORDS ? m->count : MAX_FETCH_RECORDS;
        int rc = count ? rt_outbox_read(self->outbox, m->seq, count, MAX_FETCH_BYTES,
                                        s_fetch_one, &ctx)
                       : 0;
        if (rc == RT_ETRIMMED) {
            char text[200];
            snprintf(text, sizeof text,
                     "records from %llu were trimmed from the outbox (oldest kept: %llu)",
                     (unsigned long long)m->seq,
                     (unsigned long long)rt_outbox_first_seq(self->outbox));
            s_send_error(self, id, idlen, RT_ETRIMMED, text);
            return;
        }
        if (rc < 0) {
            s_send_error(self, id, idlen, RT_EIO, "the outbox could not be read");
            return;
        }
    }
    rt_msg_t f = {.type = RT_MSG_FETCHED, .seq = m->seq, .last_seq = ctx.last,
                  .head_seq = s_stored(self)};
    s_send_msg(self, id, idlen, &f);
}

static void s_on_ack(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(idlen < 127 ? idlen : 127), id);
    rt_outbox_pos_t pos = rt_outbox_position(self->outbox);
    if (m->seq > pos.head_seq) {
        s_bad_frame(self, name, "ACK beyond the outbox head");
        return;
    }
    /* Only HELLO registers: a forgotten subscriber stays forgotten until it says HELLO. */
    s_sub_t *s = s_sub(self, name, false);
    if (!s)
        return;
    s->last_seen_ms = rt_mono_ms();
    s->conflicts = m->conflicts;
    s->commit_ts = m->commit_ts;
    s->applied_at = m->applied_at;
    snprintf(s->error, sizeof s->error, "%.*s", RT_ERROR_TEXT_MAX, m->text ? m->text : "");
    if (s->reset_from && m->seq >= s->reset_from)
        return; /* sent before it moved its progress back: keep the records it needs */
    s->reset_from = 0;
    if (s->stored.acked_seq != m->seq || s->stored.state != m->state)
        s->dirty = true;
    s->stored.acked_seq = m->seq;
    s->stored.state = (int32_t)m->state;
    /* Repair a lost PAUSE or RESUME notice. */
    bool says_paused = m->state == RT_SUB_PAUSED;
    if (says_paused == s->stored.enabled) {
        rt_msg_t n = {.type = s->stored.enabled ? RT_MSG_RESUME : RT_MSG_PAUSE, .name = name};
        s_send_msg(self, id, idlen, &n);
    }
}

/* ---------------------------------------------------------------------------------
 * Admin verbs: each handler writes its one reply into an s_reply_t, which the caller
 * sends over the ROUTER or hands to the in-process caller. */

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
static s_sub_t *s_admin_sub(rt_stream_t *self, s_reply_t *reply, const char *name)
{
    s_sub_t *s = s_sub(self, name, false);
    if (s)
        return s;
    char known[1024] = "";
    size_t n = 0, count = 0, total = zhashx_size(self->subs);
    const char **names = calloc(total ? total : 1, sizeof *names);
    for (s_sub_t *k = zhashx_first(self->subs); k && names; k = zhashx_next(self->subs))
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
    snprintf(text, sizeof text, "no subscriber named \"%s\" (known: %s)", name,
             n ? known : "none");
    s_reply_error(reply, RT_ENOTFOUND, text);
    return NULL;
}

static bool s_online(const s_sub_t *s, int64_t now)
{
    return s->last_seen_ms && now - s->last_seen_ms < ONLINE_MS;
}

/* Sends a notice to the subscriber itself (its routing id is its name). */
static bool s_notify(rt_stream_t *self, const char *name, const rt_msg_t *msg)
{
    void *frame;
    size_t len;
    if (rt_msg_encode(msg, &frame, &len) < 0)
        return false;
    bool sent = s_send_to(self, name, strlen(name), frame, len);
    free(frame);
    return sent;
}

static void s_on_pause(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    bool pause = m->type == RT_MSG_PAUSE;
    s_sub_t *s = s_admin_sub(self, reply, m->name);
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
    bool told = s_notify(self, m->name, &n);
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

static void s_on_forget(rt_stream_t *self, const rt_msg_t *m, s_reply_t *reply)
{
    if (m->flags & ~(uint64_t)RT_FORGET_FORCE) {
        s_reply_error(reply, RT_EINVAL, "FORGET with unknown flags");
        return;
    }
    s_sub_t *s = s_admin_sub(self, reply, m->name);
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
    uint64_t to;        /* last seq to count */
    bool decode;        /* count transactions and rows (decodes each record) */
    uint64_t records, bytes, txns, rows;
    uint64_t last;      /* last seq seen */
    uint8_t flags;      /* flags of the first record seen */
    int64_t first_ts;   /* commit time of the first record seen */
    bool bad;           /* a record did not decode */
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
            if (rec->flags & RT_REC_LAST)
                sc->txns++;
            for (uint32_t i = 0; i < rec->nchanges; i++)
                if (rec->changes[i].op != 'T')
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
    s_sub_t *s = s_admin_sub(self, reply, m->name);
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
                 (unsigned long long)(from - 1), m->name,
                 (unsigned long long)s->stored.acked_seq);
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
        snprintf(skipped, sizeof skipped, "; %llu records already applied by %s (acked seq %llu) "
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
        snprintf(text + n, sizeof text - (size_t)n, "%llu first and the range re-applied with "
                 "apply_remote", (unsigned long long)(from - 1));
    if (dry) {
        s_reply_ok(reply, text);
        return;
    }
    rt_msg_t note = {.type = RT_MSG_REPLAY, .name = m->name, .seq = from, .last_seq = to,
                     .flags = m->flags & RT_REPLAY_RESET};
    bool online = s_online(s, rt_mono_ms());
    if (!online || !s_notify(self, m->name, &note)) {
        if (reset) {
            snprintf(text, sizeof text,
                     "subscriber %s is not connected: a replay with --reset needs it running",
                     m->name);
            s_reply_error(reply, RT_EAGAIN, text);
            return;
        }
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used, "; %s is not connected: it catches up when it "
                 "connects", m->name);
    }
    if (reset) {
        s->stored.acked_seq = from - 1;
        s->reset_from = from;
        s->dirty = true;
    }
    if (!s->stored.enabled) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used, "; %s is paused: the records go once it is "
                 "resumed", m->name);
    }
    rt_info("%s", text);
    s_reply_ok(reply, text);
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
        st.captured_txns = cs.txns;
        st.captured_rows = cs.rows;
        st.capture_state = cs.blocked ? RT_CAPTURE_BLOCKED
                           : cs.connected ? RT_CAPTURE_STREAMING
                                          : RT_CAPTURE_DISCONNECTED;
    }
    st.now_ts = rt_pg_now_us();
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
    for (s_sub_t *s = zhashx_first(self->subs); s; s = zhashx_next(self->subs)) {
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
        o->lag_bytes = sc.records >= behind ? sc.bytes
                                            : (uint64_t)((double)sc.bytes / sc.records * behind);
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
    rt_msg_t p = {.type = RT_MSG_PONG, .source = self->source,
                  .head_seq = rt_outbox_position(self->outbox).head_seq};
    s_reply_msg(reply, &p);
}

/* The admin verbs: rtctl's requests over the ROUTER and the HTTP side's in-process
 * calls both go through this table. */
typedef void (*s_verb_fn)(rt_stream_t *self, const rt_msg_t *req, s_reply_t *reply);

static const struct {
    int type;     /* the request's message type */
    s_verb_fn fn; /* answers it */
} s_verbs[] = {
    {RT_MSG_PING, s_on_ping},
    {RT_MSG_STATUS, s_on_status},
    {RT_MSG_PAUSE, s_on_pause},
    {RT_MSG_RESUME, s_on_pause},
    {RT_MSG_FORGET, s_on_forget},
    {RT_MSG_REPLAY, s_on_replay},
};

int rt_stream_call(rt_stream_t *self, const rt_msg_t *req, void **reply, size_t *len)
{
    for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++) {
        if (s_verbs[i].type != req->type)
            continue;
        s_reply_t r = {NULL, 0};
        s_verbs[i].fn(self, req, &r);
        if (!r.frame)
            return RT_ENOMEM;
        *reply = r.frame;
        *len = r.len;
        return RT_OK;
    }
    return RT_EINVAL;
}

static void s_dispatch(rt_stream_t *self, const char *id, size_t idlen, const void *body,
                       size_t len)
{
    char peer[140];
    snprintf(peer, sizeof peer, "peer %.*s", (int)(idlen < 120 ? idlen : 120), id);
    rt_msg_t m;
    int rc = rt_msg_decode(body, len, &m);
    if (rc < 0) {
        int type = rt_msg_peek_type(body, len);
        s_bad_frame(self, peer, type == RT_MSG_UNKNOWN ? "not an rt message" : "malformed");
        s_send_error(self, id, idlen, RT_EPROTO,
                     type == RT_MSG_UNKNOWN ? "not an rt message (or an unsupported version)"
                                            : "malformed message");
        return;
    }
    switch (m.type) {
    case RT_MSG_HELLO:
        if (idlen != strlen(m.name) || memcmp(id, m.name, idlen) != 0) {
            s_bad_frame(self, peer, "HELLO name differs from the routing id");
            s_send_error(self, id, idlen, RT_EINVAL,
                         "HELLO name must equal the DEALER routing id");
            break;
        }
        s_on_hello(self, id, idlen, &m);
        break;
    case RT_MSG_FETCH: s_on_fetch(self, id, idlen, &m); break;
    case RT_MSG_ACK: s_on_ack(self, id, idlen, &m); break;
    default: {
        void *reply;
        size_t rlen;
        rc = rt_stream_call(self, &m, &reply, &rlen);
        if (rc == RT_OK) {
            s_send_reply(self, id, idlen, reply, rlen);
            free(reply);
        } else if (rc == RT_EINVAL) {
            s_bad_frame(self, peer, "unexpected message type");
            s_send_error(self, id, idlen, RT_EPROTO, "unexpected message type for a publisher");
        }
        break;
    }
    }
    rt_msg_clear(&m);
}

int rt_stream_handle(rt_stream_t *self)
{
    for (int i = 0; i < MAX_MESSAGES_PER_CALL; i++) {
        if (!(zsock_events(self->router) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv(self->router);
        if (!msg)
            break;
        if (zmsg_size(msg) != 2) {
            s_bad_frame(self, NULL, "expected 2 frames [routing id][message]");
        } else {
            zframe_t *idf = zmsg_first(msg);
            zframe_t *body = zmsg_next(msg);
            if (zframe_size(idf) == 0)
                s_bad_frame(self, NULL, "empty routing id");
            else
                s_dispatch(self, (const char *)zframe_data(idf), zframe_size(idf),
                           zframe_data(body), zframe_size(body));
        }
        zmsg_destroy(&msg);
    }
    return RT_OK;
}

typedef struct {
    rt_stream_t *self;
    size_t bytes;
} s_pub_ctx_t;

static int s_publish_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_pub_ctx_t *c = arg;
    /* PUB never blocks; past the high-water mark it drops and subscribers FETCH. */
    zmq_send(zsock_resolve(c->self->pub), data, len, ZMQ_DONTWAIT);
    c->self->published = seq;
    c->bytes += len;
    return c->bytes >= MAX_PUBLISH_BYTES ? 1 : 0;
}

static int s_publish(rt_stream_t *self, int64_t now)
{
    uint64_t stored = s_stored(self);
    if (self->published > stored)
        self->published = stored; /* chunks of a transaction that will not complete, dropped */
    if (self->published < stored) {
        s_pub_ctx_t ctx = {self, 0};
        uint64_t from = self->published + 1;
        if (from < rt_outbox_first_seq(self->outbox))
            from = rt_outbox_first_seq(self->outbox);
        int rc = rt_outbox_read(self->outbox, from, SIZE_MAX, MAX_PUBLISH_BYTES, s_publish_one,
                                &ctx);
        if (rc < 0)
            return rc;
        if (self->published < stored && ctx.bytes >= MAX_PUBLISH_BYTES) {
            /* More than a burst behind: subscribers fetch the rest over ROUTER. */
            self->published = stored;
        }
        self->last_pub_ms = now;
    } else if (now - self->last_pub_ms >= HUGZ_INTERVAL_MS) {
        rt_msg_t h = {.type = RT_MSG_HUGZ, .head_seq = stored};
        void *frame;
        size_t len;
        if (rt_msg_encode(&h, &frame, &len) == 0) {
            zmq_send(zsock_resolve(self->pub), frame, len, ZMQ_DONTWAIT);
            free(frame);
        }
        self->last_pub_ms = now;
    }
    return RT_OK;
}

static int s_persist(rt_stream_t *self)
{
    for (s_sub_t *s = zhashx_first(self->subs); s; s = zhashx_next(self->subs)) {
        if (!s->dirty)
            continue;
        int rc = rt_outbox_sub_put(self->outbox, &s->stored);
        if (rc < 0)
            return rc;
        s->dirty = false;
    }
    return RT_OK;
}

/* Trims what every enabled subscriber acknowledged and the retention window passed. */
static int s_trim(rt_stream_t *self, int64_t now)
{
    uint64_t upto = UINT64_MAX;
    size_t enabled = 0;
    for (s_sub_t *s = zhashx_first(self->subs); s; s = zhashx_next(self->subs)) {
        if (!s->stored.enabled)
            continue;
        enabled++;
        if (s->stored.acked_seq < upto)
            upto = s->stored.acked_seq;
    }
    if (!enabled)
        return RT_OK; /* nobody registered yet: keep everything */
    uint64_t old_enough = self->retention_ms <= 0 ? UINT64_MAX : 0;
    while (self->retention_ms > 0 && self->nsamples > 0) {
        s_sample_t *s = &self->samples[self->sample_start];
        if (now - s->ms < self->retention_ms)
            break;
        old_enough = s->seq;
        if (self->nsamples == 1)
            break;
        self->sample_start = (self->sample_start + 1) % SAMPLES_MAX;
        self->nsamples--;
    }
    if (old_enough < upto)
        upto = old_enough;
    if (upto < rt_outbox_first_seq(self->outbox))
        return RT_OK;
    size_t deleted = 0;
    int rc = rt_outbox_trim(self->outbox, upto, TRIM_BATCH, &deleted);
    if (rc < 0)
        return rc;
    if (deleted)
        rt_debug("trimmed %zu records up to seq %llu", deleted, (unsigned long long)upto);
    return RT_OK;
}

/* Notes when the head moved, at most once a second, for the retention window. A head
 * is noted even when nothing is published (a full outbox publishes nothing), so trimming
 * always reaches it. */
static void s_sample(rt_stream_t *self, int64_t now)
{
    uint64_t head = rt_outbox_position(self->outbox).head_seq;
    if (self->nsamples > 0) {
        const s_sample_t *last =
            &self->samples[(self->sample_start + self->nsamples - 1) % SAMPLES_MAX];
        if (last->seq >= head || now - last->ms < 1000)
            return;
    }
    if (self->nsamples == SAMPLES_MAX) {
        self->sample_start = (self->sample_start + 1) % SAMPLES_MAX;
        self->nsamples--;
    }
    self->samples[(self->sample_start + self->nsamples) % SAMPLES_MAX] = (s_sample_t){head, now};
    self->nsamples++;
}

int rt_stream_tick(rt_stream_t *self)
{
    int64_t now = rt_mono_ms();
    s_sample(self, now);
    int rc = s_publish(self, now);
    if (rc < 0)
        return rc;
    if (now - self->last_persist_ms >= PERSIST_INTERVAL_MS) {
        self->last_persist_ms = now;
        if ((rc = s_persist(self)) < 0)
            return rc;
    }
    if (now - self->last_trim_ms >= TRIM_INTERVAL_MS) {
        self->last_trim_ms = now;
        if ((rc = s_trim(self, now)) < 0)
            return rc;
    }
    return RT_OK;
}

static int s_load_sub(void *arg, const rt_outbox_sub_t *sub)
{
    rt_stream_t *self = arg;
    s_sub_t *s = s_sub(self, sub->name, true);
    if (!s)
        return RT_ENOMEM;
    s->stored = *sub;
    s->dirty = false;
    return 0;
}

static void s_sub_free(void **item)
{
    free(*item);
    *item = NULL;
}

void *rt_stream_router(rt_stream_t *self)
{
    return zsock_resolve(self->router);
}

void rt_stream_set_retention(rt_stream_t *self, int64_t seconds)
{
    self->retention_ms = seconds * 1000;
}

uint64_t rt_stream_bad_frames(const rt_stream_t *self)
{
    return self->bad_frames;
}

static zsock_t *s_bind(int type, const char *endpoint, const char *what, int hwm)
{
    zsock_t *sock = zsock_new(type);
    if (!sock)
        return NULL;
    zsock_set_linger(sock, 0);
    if (type == ZMQ_ROUTER) {
        zsock_set_router_mandatory(sock, 1);
        zsock_set_router_handover(sock, 1);
        zsock_set_maxmsgsize(sock, RT_WIRE_MAX_FRAME);
        zsock_set_sndhwm(sock, 100000);
        zsock_set_rcvhwm(sock, 100000);
    } else {
        zsock_set_sndhwm(sock, hwm);
    }
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        rt_error("cannot bind the %s socket to %s: %s", what, endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}

rt_stream_t *rt_stream_new(const rt_stream_opts_t *opts, rt_outbox_t *outbox,
                           rt_capture_t *capture)
{
    rt_stream_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->source = strdup(opts->source);
    self->slot = strdup(opts->slot ? opts->slot : "");
    self->pub_endpoint = strdup(opts->pub);
    self->retention_ms = opts->retention_s * 1000;
    self->outbox = outbox;
    self->capture = capture;
    self->subs = zhashx_new();
    self->samples = calloc(SAMPLES_MAX, sizeof *self->samples);
    self->dec = rt_record_decoder_new();
    if (!self->source || !self->slot || !self->pub_endpoint || !self->subs || !self->samples ||
        !self->dec)
        goto fail;
    zhashx_set_destructor(self->subs, s_sub_free);
    if (rt_outbox_sub_each(outbox, s_load_sub, self) < 0)
        goto fail;
    self->router = s_bind(ZMQ_ROUTER, opts->listen, "ROUTER (--listen)", 0);
    if (!self->router)
        goto fail;
    self->pub = s_bind(ZMQ_PUB, opts->pub, "PUB (--pub)",
                       opts->pub_hwm > 0 ? (int)opts->pub_hwm : RT_LIVE_HWM);
    if (!self->pub)
        goto fail;
    /* Records stored before this start are served by FETCH, not re-published. */
    int64_t now = rt_mono_ms();
    self->published = s_stored(self);
    self->samples[0] = (s_sample_t){self->published, now};
    self->nsamples = 1;
    self->last_persist_ms = self->last_trim_ms = now;
    return self;
fail:
    rt_stream_destroy(&self);
    return NULL;
}

void rt_stream_destroy(rt_stream_t **self_p)
{
    rt_stream_t *self = *self_p;
    if (!self)
        return;
    if (self->subs && self->outbox && s_persist(self) < 0)
        rt_warn("could not store the subscribers' last acknowledgements");
    zsock_destroy(&self->router);
    zsock_destroy(&self->pub);
    zhashx_destroy(&self->subs);
    free(self->samples);
    rt_record_decoder_destroy(&self->dec);
    free(self->source);
    free(self->slot);
    free(self->pub_endpoint);
    free(self);
    *self_p = NULL;
}
