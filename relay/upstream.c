/* relay/upstream.c - rt-relay's side of its publisher (upstream.h).
 *
 * Life of a connection, as a subscriber's (schemas/protocol.md, "Subscriber life"):
 *   DOWN --connect DEALER, PING--> PINGING --PONG{source}-->
 *     a new outbox: STATUS --STATUS_REPLY{first_seq}--> the outbox starts there
 *   --HELLO{name, stored head}--> HELLO --WELCOME, connect SUB--> STREAMING
 * In STREAMING, records are taken in seq order once known stored: fetched ones at once,
 * live ones kept (a run of consecutive seqs) until the publisher announces them stored.
 * Taken records go into the filling batch; the committer stores one batch while the
 * next fills. */
#include "upstream.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "committer.h"
#include "log.h"
#include "wire.h"

#define S_POLL_MS 100
#define S_RECV_BATCH 256
/* Live records kept until they are known stored. */
#define S_PENDING_MAX 4096
#define S_PENDING_MAX_BYTES (16u << 20)
/* A full outbox (RT_EFULL) is tried again after this long. */
#define S_FULL_RETRY_MS 500

typedef enum { S_DOWN, S_PINGING, S_STATUS, S_HELLO, S_STREAMING } s_state_t;

/* What the relay needs of a record, decoded once when it arrives. */
typedef struct {
    uint64_t seq;
    uint8_t flags;       /* RT_REC_FIRST | RT_REC_LAST */
    rt_lsn_t commit_lsn; /* of its source transaction */
    rt_lsn_t end_lsn;    /* LAST records */
    int64_t commit_ts;   /* source commit time */
    uint32_t nchanges;   /* row changes in it */
} s_head_t;

/* A live record kept until it is known stored. */
typedef struct {
    zmq_msg_t msg;
    s_head_t head;
} s_kept_t;

/* Records taken, in seq order, for one outbox commit. */
typedef struct {
    zmq_msg_t *msgs;
    rt_outbox_rec_t *recs;
    size_t n, cap, bytes;
    uint64_t head;       /* the last LAST record in it (0: none) */
    rt_lsn_t commit_lsn; /* of that record */
    rt_lsn_t end_lsn;    /* of that record */
    int64_t commit_ts;   /* of that record */
} s_batch_t;

struct rt_upstream_t {
    /* Options. */
    char *publisher, *pub, *name;
    zcert_t *cert;
    char *publisher_key;
    uint64_t batch_bytes;

    rt_outbox_t *outbox;
    rt_stream_t *stream;
    rt_committer_t *committer;
    rt_record_decoder_t *dec;
    char *source;
    bool source_stored; /* the outbox holds it (meta "source") */

    /* The connection. */
    s_state_t state;
    rt_client_t c;     /* the sockets, the publisher's run and heads, the timers */
    uint64_t last_run; /* the run the outbox's records above its head came from */
    bool paused;       /* the publisher paused the relay */
    bool ready_logged;

    /* Taking records. */
    uint64_t expected;   /* next seq to take */
    bool tail_open;      /* the last taken record is not a LAST */
    rt_lsn_t tail_lsn;   /* its commit LSN */
    bool replaced;       /* a record did not continue the open transaction: drop it */
    s_kept_t *pending;   /* live records not known stored: seqs pend_first.. (a ring) */
    uint64_t pend_first; /* seq of the oldest */
    size_t pend_start, pend_n, pend_bytes;

    /* Storing. */
    s_batch_t fill, flight; /* the batch filling, the one the committer stores */
    int64_t full_until_ms;  /* the outbox was full: no submit before this */

    /* Taken since start, for STATUS. */
    uint64_t taken_txns, taken_rows;

    /* ACKs. */
    int64_t head_ts; /* source commit time of the stored head */
    int64_t head_at; /* when it was stored */
    int result;      /* RT_OK while running */
};

/* ---------------------------------------------------------------------------------
 * Batches. */

static void s_batch_clear(s_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        zmq_msg_close(&b->msgs[i]);
    b->n = b->bytes = 0;
    b->head = 0;
}

static void s_batch_free(s_batch_t *b)
{
    s_batch_clear(b);
    free(b->msgs);
    free(b->recs);
    memset(b, 0, sizeof *b);
}

/* Appends a reference to frame. False when out of memory. */
static bool s_batch_add(s_batch_t *b, zmq_msg_t *frame, const s_head_t *rec)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        zmq_msg_t *m = realloc(b->msgs, cap * sizeof *m);
        if (!m)
            return false;
        b->msgs = m;
        rt_outbox_rec_t *r = realloc(b->recs, cap * sizeof *r);
        if (!r)
            return false;
        b->recs = r;
        b->cap = cap;
    }
    zmq_msg_t *m = &b->msgs[b->n];
    if (zmq_msg_init(m) != 0 || zmq_msg_copy(m, frame) != 0)
        return false;
    b->n++;
    b->bytes += zmq_msg_size(frame);
    if (rec->flags & RT_REC_LAST) {
        b->head = rec->seq;
        b->commit_lsn = rec->commit_lsn;
        b->end_lsn = rec->end_lsn;
        b->commit_ts = rec->commit_ts;
    }
    return true;
}

/* ---------------------------------------------------------------------------------
 * Sending. */

static void s_send_ack(rt_upstream_t *self, int64_t now)
{
    rt_outbox_pos_t pos = rt_outbox_position(self->outbox);
    rt_msg_t m = {.type = RT_MSG_ACK,
                  .seq = pos.head_seq,
                  .state = rt_client_sub_state(&self->c, self->paused, self->expected),
                  .commit_ts = self->head_ts,
                  .applied_at = self->head_at,
                  .text = ""};
    (void)rt_client_ack(&self->c, &m, now);
}

/* ---------------------------------------------------------------------------------
 * Storing. */

/* Hands a batch to the committer when it is idle: the one it could not store for lack
 * of room again, else the filling one. */
static int s_submit(rt_upstream_t *self, int64_t now, bool force)
{
    if (rt_committer_busy(self->committer))
        return RT_OK;
    if (self->flight.n == 0) {
        if (self->fill.n == 0)
            return RT_OK;
        s_batch_t t = self->flight;
        self->flight = self->fill;
        self->fill = t;
    } else if (now < self->full_until_ms && !force) {
        return RT_OK;
    }
    s_batch_t *b = &self->flight;
    for (size_t i = 0; i < b->n; i++)
        b->recs[i] = (rt_outbox_rec_t){zmq_msg_data(&b->msgs[i]), zmq_msg_size(&b->msgs[i])};
    rt_outbox_pos_t pos = rt_outbox_position(self->outbox);
    if (b->head) {
        pos.head_seq = b->head;
        pos.last_commit_lsn = b->commit_lsn;
        pos.last_end_lsn = b->end_lsn;
    }
    return rt_committer_submit(self->committer, b->recs, b->n, &pos) == RT_OK ? RT_OK : RT_EIO;
}

/* Takes the outcome of the commit in flight (waiting for it with wait). */
static int s_collect(rt_upstream_t *self, bool wait, int64_t now)
{
    int result;
    int rc = rt_committer_collect(self->committer, wait, &result);
    if (rc == RT_EAGAIN)
        return RT_OK;
    if (rc != RT_OK)
        return RT_EIO;
    s_batch_t *b = &self->flight;
    if (result == RT_EFULL) {
        /* Nothing was stored: the same batch goes again later. */
        if (!self->full_until_ms)
            rt_warn("the relay's outbox is full (max-outbox-mb): storing nothing more until its "
                    "subscribers acknowledge");
        self->full_until_ms = now + S_FULL_RETRY_MS;
        return RT_OK;
    }
    if (result != RT_OK)
        return RT_EIO;
    if (b->head) {
        self->head_ts = b->commit_ts;
        self->head_at = rt_pg_now_us();
        self->c.ack_due = true;
    }
    s_batch_clear(b);
    self->full_until_ms = 0;
    return RT_OK;
}

/* Stores everything taken, waiting for it. */
static int s_flush(rt_upstream_t *self)
{
    int64_t now = rt_mono_ms();
    int rc;
    while (rt_committer_busy(self->committer) || self->flight.n > 0 || self->fill.n > 0) {
        if ((rc = s_submit(self, now, true)) != RT_OK || (rc = s_collect(self, true, now)) != RT_OK)
            return rc;
        if (self->full_until_ms) {
            rt_error("the relay's outbox is full: cannot store the records it took");
            return RT_EIO;
        }
    }
    return RT_OK;
}

/* Drops the stored records of an unfinished transaction, which the publisher may have
 * replaced, and starts a new run for the relay's subscribers. */
static int s_discard_open(rt_upstream_t *self)
{
    int rc = s_flush(self);
    if (rc != RT_OK)
        return rc;
    uint64_t next = rt_outbox_next_seq(self->outbox);
    rt_outbox_pos_t pos = rt_outbox_position(self->outbox);
    if (next == pos.head_seq + 1 && !self->replaced)
        return RT_OK;
    if ((rc = rt_outbox_discard_open(self->outbox)) < 0)
        return RT_EIO;
    self->replaced = false;
    self->tail_open = false;
    self->tail_lsn = pos.last_commit_lsn;
    self->expected = rt_outbox_next_seq(self->outbox);
    if (self->stream)
        rt_stream_new_run(self->stream);
    rt_info(
        "records %" PRIu64 "..%" PRIu64 " of an unfinished transaction were dropped (the "
        "publisher may send it otherwise); the relay's subscribers start over from seq %" PRIu64,
        pos.head_seq + 1, next - 1, pos.head_seq + 1);
    return RT_OK;
}

/* ---------------------------------------------------------------------------------
 * Taking records. */

static void s_pending_clear(rt_upstream_t *self)
{
    for (size_t i = 0; i < self->pend_n; i++)
        zmq_msg_close(&self->pending[(self->pend_start + i) % S_PENDING_MAX].msg);
    self->pend_n = self->pend_bytes = 0;
    self->pend_start = 0;
}

static void s_pending_pop(rt_upstream_t *self)
{
    zmq_msg_t *m = &self->pending[self->pend_start].msg;
    self->pend_bytes -= zmq_msg_size(m);
    zmq_msg_close(m);
    self->pend_start = (self->pend_start + 1) % S_PENDING_MAX;
    self->pend_n--;
    self->pend_first++;
}

/* Starts over after a lost connection or a new run: what is not taken is asked again. */
static void s_link_lost(rt_upstream_t *self, const char *why, int64_t now)
{
    s_pending_clear(self);
    rt_client_lost(&self->c, why, now);
    self->state = S_DOWN;
}

/* The next record, known stored (rec: its header): into the batch, out on the relay's
 * PUB. */
static void s_take(rt_upstream_t *self, zmq_msg_t *frame, const s_head_t *rec, int64_t now)
{
    bool first = rec->flags & RT_REC_FIRST;
    if (self->tail_open ? first || rec->commit_lsn != self->tail_lsn : !first) {
        /* The publisher sent another transaction where the open one's chunks were
         * expected: it restarted and replaced them. */
        self->replaced = true;
        s_link_lost(self, "the publisher replaced an unfinished transaction", now);
        rt_client_restart(&self->c, now);
        return;
    }
    if (!s_batch_add(&self->fill, frame, rec)) {
        rt_error("out of memory taking seq %" PRIu64, rec->seq);
        self->result = RT_ENOMEM;
        return;
    }
    self->tail_open = !(rec->flags & RT_REC_LAST);
    self->tail_lsn = rec->commit_lsn;
    self->expected++;
    self->taken_txns += !self->tail_open;
    self->taken_rows += rec->nchanges;
    rt_stream_publish_live(self->stream, rec->seq, zmq_msg_data(frame), zmq_msg_size(frame));
}

/* True while the filling batch may take more. */
static bool s_room(const rt_upstream_t *self)
{
    return self->fill.bytes < self->batch_bytes && self->result == RT_OK &&
           self->state == S_STREAMING && !self->paused;
}

/* Takes the kept live records that are next and known stored. */
static void s_drain(rt_upstream_t *self, int64_t now)
{
    while (self->pend_n > 0 && self->pend_first < self->expected)
        s_pending_pop(self);
    while (self->pend_n > 0 && self->pend_first == self->expected &&
           self->pend_first <= self->c.durable_head && s_room(self)) {
        s_kept_t *k = &self->pending[self->pend_start];
        s_take(self, &k->msg, &k->head, now);
        if (self->state != S_STREAMING)
            return; /* s_take dropped the link (and the kept records) */
        s_pending_pop(self);
    }
}

/* Keeps a live record until it is known stored: the kept ones are one run of
 * consecutive seqs; a record past it starts a new one (the ones between are fetched). */
static void s_keep(rt_upstream_t *self, const s_head_t *head, zmq_msg_t *frame)
{
    uint64_t seq = head->seq;
    if (seq < self->expected)
        return;
    if (self->pend_n > 0 && seq < self->pend_first + self->pend_n)
        return; /* kept already */
    if (self->pend_n > 0 && seq != self->pend_first + self->pend_n)
        s_pending_clear(self);
    size_t len = zmq_msg_size(frame);
    if (self->pend_n == S_PENDING_MAX || self->pend_bytes + len > S_PENDING_MAX_BYTES)
        return; /* dropped: fetched later */
    s_kept_t *k = &self->pending[(self->pend_start + self->pend_n) % S_PENDING_MAX];
    if (zmq_msg_init(&k->msg) != 0 || zmq_msg_copy(&k->msg, frame) != 0)
        return;
    k->head = *head;
    if (self->pend_n == 0)
        self->pend_first = seq;
    self->pend_n++;
    self->pend_bytes += len;
}

/* The publisher restarted: start over. */
static void s_restarted(rt_upstream_t *self, int64_t now)
{
    s_link_lost(self, "the publisher restarted (another run id)", now);
    rt_client_restart(&self->c, now);
}

/* What a message of the publisher's run says: head is stored. Another run: the
 * publisher restarted; start over (false). */
static bool s_note_run(rt_upstream_t *self, uint64_t run_id, uint64_t head, int64_t now)
{
    if (rt_client_note_run(&self->c, run_id, head))
        return true;
    s_restarted(self, now);
    return false;
}

static void s_on_record(rt_upstream_t *self, zmq_msg_t *frame, bool fetched, const rt_msg_t *live,
                        int64_t now)
{
    if (self->state != S_STREAMING || self->paused)
        return;
    const rt_record_t *rec;
    if (rt_record_decode(self->dec, zmq_msg_data(frame), zmq_msg_size(frame), &rec) != RT_OK) {
        rt_client_bad(&self->c, "a REC that does not decode", now);
        return;
    }
    s_head_t head = {.seq = rec->seq,
                     .flags = rec->flags,
                     .commit_lsn = rec->commit_lsn,
                     .end_lsn = rec->end_lsn,
                     .commit_ts = rec->commit_ts,
                     .nchanges = rec->nchanges};
    uint64_t seq = head.seq;
    if (fetched) {
        rt_client_fetched_record(&self->c, seq, zmq_msg_size(frame), now);
    } else if (!s_note_run(self, live->run_id, live->head_seq, now)) {
        return;
    }
    if (seq == self->expected && seq <= self->c.durable_head && (fetched || self->pend_n == 0) &&
        s_room(self))
        s_take(self, frame, &head, now);
    else if (!fetched)
        s_keep(self, &head, frame);
    s_drain(self, now);
}

/* ---------------------------------------------------------------------------------
 * The conversation. */

static int s_connect(rt_upstream_t *self, int64_t now)
{
    int rc = rt_client_connect(&self->c, now);
    if (rc == RT_OK)
        self->state = S_PINGING;
    return rc;
}

static void s_hello(rt_upstream_t *self)
{
    rt_msg_t h = {
        .type = RT_MSG_HELLO, .name = self->name, .seq = rt_outbox_position(self->outbox).head_seq};
    (void)rt_client_send(&self->c, &h);
    self->state = S_HELLO;
}

static void s_on_pong(rt_upstream_t *self, const rt_msg_t *m)
{
    if (self->state != S_PINGING)
        return;
    if (self->source && strcmp(self->source, m->source) != 0) {
        rt_error("the publisher at %s serves source \"%s\", but this relay's outbox holds "
                 "source \"%s\"",
                 self->publisher, m->source, self->source);
        self->result = RT_EPROTO;
        return;
    }
    if (!self->source && !(self->source = strdup(m->source))) {
        self->result = RT_ENOMEM;
        return;
    }
    if (!self->source_stored) {
        rt_msg_t s = {.type = RT_MSG_STATUS};
        (void)rt_client_send(&self->c, &s);
        self->state = S_STATUS;
        return;
    }
    if (self->stream)
        s_hello(self);
    /* else the caller makes the serving side now: the PING after it is answered by HELLO */
}

/* A new outbox starts at the publisher's oldest record, so that it can serve every
 * subscriber the publisher can. */
static void s_on_status(rt_upstream_t *self, const void *frame, size_t len)
{
    if (self->state != S_STATUS)
        return;
    rt_status_t st;
    if (rt_status_decode(frame, len, &st) != RT_OK) {
        rt_client_bad(&self->c, "a STATUS_REPLY that does not decode", rt_mono_ms());
        return;
    }
    uint64_t start = st.first_seq <= st.head_seq ? st.first_seq : st.head_seq + 1;
    rt_status_clear(&st);
    if (rt_outbox_start_at(self->outbox, start) != RT_OK ||
        rt_outbox_meta_set(self->outbox, "source", self->source) != RT_OK) {
        self->result = RT_EIO;
        return;
    }
    self->source_stored = true;
    self->expected = start;
    rt_info("a new outbox: it starts at the publisher's oldest record, seq %" PRIu64, start);
    if (self->stream)
        s_hello(self);
    else
        self->state = S_PINGING;
}

static void s_on_welcome(rt_upstream_t *self, const rt_msg_t *m, int64_t now)
{
    if (self->state != S_HELLO)
        return;
    if (rt_client_subscribe(&self->c, m->endpoint) != RT_OK) {
        s_link_lost(self, "the PUB endpoint cannot be used", now);
        return;
    }
    /* Records above the head from another run, or a replaced transaction, go. */
    if (self->replaced || (self->last_run && m->run_id != self->last_run)) {
        int rc = s_discard_open(self);
        if (rc != RT_OK) {
            self->result = rc;
            return;
        }
    }
    self->last_run = m->run_id;
    rt_client_welcome(&self->c, m);
    self->paused = m->paused;
    self->expected = rt_outbox_next_seq(self->outbox) + self->fill.n + self->flight.n;
    self->state = S_STREAMING;
    self->c.last_ack_ms = 0;
    if (!self->ready_logged || m->paused)
        rt_info("following the publisher at %s: source %s, its outbox seq %" PRIu64 "..%" PRIu64
                ", from seq %" PRIu64 "%s",
                self->publisher, m->source, m->first_seq, m->head_seq, self->expected,
                m->paused ? " (paused there: taking nothing until rtctl resume)" : "");
    self->ready_logged = true;
}

static void s_on_fetched(rt_upstream_t *self, const rt_msg_t *m, int64_t now)
{
    if (self->state != S_STREAMING)
        return;
    if (!rt_client_fetched(&self->c, m, now)) {
        s_restarted(self, now);
        return;
    }
    s_drain(self, now);
}

static void s_on_msg(void *ctx, rt_msg_t *m, int64_t now)
{
    rt_upstream_t *self = ctx;
    switch (m->type) {
    case RT_MSG_PONG: s_on_pong(self, m); break;
    case RT_MSG_STATUS_REPLY: s_on_status(self, m->data, m->datalen); break;
    case RT_MSG_WELCOME: s_on_welcome(self, m, now); break;
    case RT_MSG_HUGZ:
        if (self->state == S_STREAMING && s_note_run(self, m->run_id, m->head_seq, now))
            s_drain(self, now);
        break;
    case RT_MSG_FETCHED: s_on_fetched(self, m, now); break;
    case RT_MSG_PAUSE:
    case RT_MSG_RESUME:
        if (self->state != S_STREAMING)
            break;
        self->paused = m->type == RT_MSG_PAUSE;
        if (self->paused) {
            s_pending_clear(self);
            rt_fetch_window_forget(&self->c.fetch);
        } else {
            rt_fetch_window_reset(&self->c.fetch);
        }
        rt_info("%s by the publisher", self->paused ? "paused" : "resumed");
        s_send_ack(self, now);
        break;
    case RT_MSG_REPLAY:
        if (m->flags & RT_REPLAY_RESET)
            rt_warn("the publisher asked for a replay with reset from seq %" PRIu64
                    ": a relay keeps every record it stored and replays nothing; replay its "
                    "subscribers at the relay instead",
                    m->seq);
        rt_client_note_head(&self->c, m->last_seq);
        break;
    case RT_MSG_SKIP:
        rt_warn("the publisher asked to skip the DDL of seq %" PRIu64 ": a relay applies "
                "nothing; skip it at the subscribers of the relay",
                m->seq);
        break;
    case RT_MSG_RESYNC:
        rt_error("the publisher asked relay %s to resync: a relay copies no tables; forget it "
                 "there (rtctl forget %s) and start it with an empty outbox",
                 self->name, self->name);
        self->result = RT_EINVAL;
        break;
    case RT_MSG_ERROR:
        if (m->code == RT_ETRIMMED) {
            rt_error("the publisher no longer has the records this relay needs (from seq %" PRIu64
                     "): %s; start the relay with an empty outbox (its subscribers then need "
                     "those records from the publisher)",
                     rt_outbox_position(self->outbox).head_seq + 1, m->text);
            self->result = RT_ETRIMMED;
        } else {
            /* As a subscriber: the silence that follows makes it connect again later. */
            rt_warn("the publisher reported an error: %s (%s)", m->text, rt_strerror((int)m->code));
        }
        break;
    default: rt_client_bad(&self->c, "an unexpected message", now); break;
    }
}

static void s_hook_record(void *ctx, zmq_msg_t *frame, bool from_dealer, const rt_msg_t *live,
                          int64_t now)
{
    rt_upstream_t *self = ctx;
    if (!from_dealer && !live)
        rt_client_bad(&self->c, "a REC without its LIVE header on the PUB socket", now);
    else
        s_on_record(self, frame, from_dealer, live, now);
}

/* A block of a transaction still running on the source, its abort or its commit: sent on
 * at once on the relay's PUB, under the relay's run (blocks are live only: neither stored
 * nor fetched; protocol.md, "Streamed transactions"). Its seqs are the relay's too. */
static void s_hook_stream(void *ctx, rt_msg_t *m, int64_t now)
{
    rt_upstream_t *self = ctx;
    (void)now;
    if (self->state == S_STREAMING && !self->paused && self->stream && self->c.run_id &&
        m->run_id == self->c.run_id)
        rt_stream_publish_block(self->stream, m);
}

static const rt_client_hooks_t s_hooks = {
    .record = s_hook_record, .message = s_on_msg, .stream = s_hook_stream};

/* ---------------------------------------------------------------------------------
 * Timers and the loop. */

static void s_maybe_fetch(rt_upstream_t *self, int64_t now)
{
    if (self->paused || !s_room(self))
        return;
    /* Kept live records cover their seqs: fetch only up to them. */
    uint64_t head = self->c.known_head;
    if (self->pend_n > 0)
        head = self->pend_first > self->expected ? self->pend_first - 1 : 0;
    (void)rt_client_fetch(&self->c, self->expected, head, false, now);
}

int rt_upstream_tick(rt_upstream_t *self)
{
    int64_t now = rt_mono_ms();
    if (self->result != RT_OK)
        return self->result;
    switch (self->state) {
    case S_DOWN:
        if (rt_client_reconnect_due(&self->c, now) &&
            (self->result = s_connect(self, now)) != RT_OK)
            return self->result;
        break;
    case S_PINGING: rt_client_ping(&self->c, now); break;
    case S_STATUS:
    case S_HELLO: break;
    case S_STREAMING:
        s_drain(self, now);
        s_maybe_fetch(self, now);
        if (rt_client_ack_due(&self->c, now))
            s_send_ack(self, now);
        break;
    }
    const char *why = self->state != S_DOWN ? rt_client_silence(&self->c, now) : NULL;
    if (why)
        s_link_lost(self, why, now);
    if (s_submit(self, now, false) != RT_OK)
        self->result = RT_EIO;
    return self->result;
}

int rt_upstream_poll_items(const rt_upstream_t *self, zmq_pollitem_t *items)
{
    int n = rt_client_poll_items(&self->c, items);
    items[n++] =
        (zmq_pollitem_t){.socket = rt_committer_socket(self->committer), .events = ZMQ_POLLIN};
    return n;
}

long rt_upstream_timeout(const rt_upstream_t *self)
{
    if (self->fill.n > 0 && self->flight.n == 0 && !rt_committer_busy(self->committer))
        return 0;
    return S_POLL_MS;
}

int rt_upstream_handle(rt_upstream_t *self, const zmq_pollitem_t *items, int n)
{
    int64_t now = rt_mono_ms();
    for (int i = 0; i < n && self->result == RT_OK; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        if (items[i].socket == rt_committer_socket(self->committer)) {
            if (s_collect(self, false, now) != RT_OK)
                self->result = RT_EIO;
            continue;
        }
        for (int k = 0; k < S_RECV_BATCH && self->result == RT_OK; k++) {
            /* A socket closed by what was received (a new run) is not read again. */
            if (!rt_client_recv(&self->c, items[i].socket, &s_hooks, self, now))
                break;
        }
    }
    if (self->result == RT_OK && s_submit(self, now, false) != RT_OK)
        self->result = RT_EIO;
    return self->result;
}

/* ---------------------------------------------------------------------------------
 * Life. */

void rt_upstream_status(void *arg, rt_stream_upstream_t *out)
{
    const rt_upstream_t *self = arg;
    *out = (rt_stream_upstream_t){.endpoint = self->publisher,
                                  .connected = self->state == S_STREAMING,
                                  .blocked = self->full_until_ms != 0,
                                  .head = self->c.known_head,
                                  .txns = self->taken_txns,
                                  .rows = self->taken_rows};
}

const char *rt_upstream_source(const rt_upstream_t *self)
{
    return self->source_stored ? self->source : NULL;
}

void rt_upstream_attach(rt_upstream_t *self, rt_stream_t *stream)
{
    self->stream = stream;
    self->c.last_ping_ms = 0; /* PING now: its PONG is answered by HELLO */
}

rt_upstream_t *rt_upstream_new(const rt_upstream_opts_t *opts, rt_outbox_t *outbox)
{
    rt_upstream_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->outbox = outbox;
    self->publisher = strdup(opts->publisher);
    self->pub = opts->pub ? strdup(opts->pub) : NULL;
    self->name = strdup(opts->name);
    self->publisher_key = opts->publisher_key ? strdup(opts->publisher_key) : NULL;
    self->cert = opts->cert;
    self->batch_bytes = opts->batch_bytes ? opts->batch_bytes : 8u << 20;
    self->pending = calloc(S_PENDING_MAX, sizeof *self->pending);
    self->dec = rt_record_decoder_new();
    rt_client_init(&self->c, self->publisher, self->name, self->pub, self->cert,
                   self->publisher_key);
    if (!self->publisher || !self->name || (opts->pub && !self->pub) ||
        (opts->publisher_key && !self->publisher_key) || !self->pending || !self->dec) {
        rt_error("out of memory");
        goto fail;
    }
    char source[128];
    if (rt_outbox_meta_get(outbox, "source", source, sizeof source) == 0) {
        if (!(self->source = strdup(source)))
            goto fail;
        self->source_stored = true;
    }
    /* A transaction left unfinished by the last run comes again whole. */
    if (rt_outbox_discard_open(outbox) < 0)
        goto fail;
    self->expected = rt_outbox_next_seq(outbox);
    self->tail_lsn = rt_outbox_position(outbox).last_commit_lsn;
    if (!(self->committer = rt_committer_new(outbox)))
        goto fail;
    return self;
fail:
    rt_upstream_destroy(&self);
    return NULL;
}

void rt_upstream_destroy(rt_upstream_t **self_p)
{
    rt_upstream_t *self = *self_p;
    if (!self)
        return;
    if (self->committer && rt_committer_busy(self->committer))
        (void)s_collect(self, true, rt_mono_ms());
    rt_committer_destroy(&self->committer);
    zsock_destroy(&self->c.dealer);
    zsock_destroy(&self->c.sub);
    if (self->pending)
        s_pending_clear(self);
    free(self->pending);
    s_batch_free(&self->fill);
    s_batch_free(&self->flight);
    rt_record_decoder_destroy(&self->dec);
    free(self->source);
    free(self->publisher);
    free(self->pub);
    free(self->name);
    free(self->publisher_key);
    free(self);
    *self_p = NULL;
}
