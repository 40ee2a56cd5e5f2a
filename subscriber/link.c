/* subscriber/link.c - the subscriber's side of the publisher conversation (DEALER + SUB).
 *
 * Life of a connection (schemas/protocol.md):
 *   DOWN --connect DEALER, PING--> PINGING --PONG{source}--> SOURCE
 *   SOURCE --replica set up for rt_<source>, HELLO{name, applied}--> HELLO
 *   HELLO --WELCOME{source, pub, first, head}, connect SUB--> STREAMING
 * In STREAMING a record is applied only when its seq is the next one; anything
 * else is dropped and a gap (known head >= next) is filled with FETCH: up to
 * RT_FETCH_CREDIT FETCHes of consecutive ranges (fetch_window.h) are outstanding at once, so that
 * the publisher reads and sends the next range while this one is applied. While FETCHes are
 * outstanding (catching up) a group is not committed merely because no input is waiting; the group
 * limits and S_GROUP_MAX_MS end it. Silence for RT_CLIENT_SILENCE_MS drops both sockets and starts
 * over with back-off. Apply failures hold applying (back-off) without dropping the link.
 *
 * Admin notices from the publisher over the DEALER: PAUSE / RESUME (also the paused
 * flag of WELCOME): while paused nothing is applied or fetched and ACK says
 * "paused"; REPLAY: retry now and catch up to its last seq, and with RT_REPLAY_RESET
 * first move the replica's progress back to from - 1 and re-apply the range with
 * apply_remote.
 */
#include "link.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "daemon.h"
#include "log.h"
#include "streamed.h"
#include "wire.h"

/* Back-off of reconnections to the replica. */
#define S_RECONNECT_MIN_MS 500
#define S_RECONNECT_MAX_MS 10000
/* Back-off of retries after a conflict or another apply error. */
#define S_RETRY_MIN_MS 1000
#define S_RETRY_MAX_MS 30000
/* Times in a row a transaction the replica failed on a deadlock or a serialization
 * failure is applied again at once, before the back-off above takes over. */
#define S_QUICK_RETRIES 3
/* A group of source transactions is committed once open this long. */
#define S_GROUP_MAX_MS 250
/* Idle poll step. */
#define S_POLL_MS 100
/* Messages received from one socket before polling again. */
#define S_RECV_BATCH 256
/* Live records held past a gap until FETCH fills it: beyond these, later records are
 * dropped (and fetched). */
#define S_HELD_MAX 4096
#define S_HELD_MAX_BYTES (64u * 1024 * 1024)
/* HELLO again after the publisher said it has not stored the applied seq yet. */
#define S_HELLO_AGAIN_MS 100

/* A live record kept past a gap, to apply once FETCH filled the gap. */
typedef struct {
    uint64_t seq;     /* its seq (the list is sorted by it) */
    zmq_msg_t rec;    /* the REC frame */
    bool from_dealer; /* a FETCH answer */
    bool live;        /* with a LIVE header: */
    uint64_t run_id;  /* its run */
    uint64_t head;    /* and stored head */
} s_held_t;

typedef enum { S_DOWN, S_PINGING, S_SOURCE, S_HELLO, S_STREAMING } s_state_t;

struct rt_link_t {
    char *publisher;             /* ROUTER endpoint */
    char *pub_override;          /* PUB endpoint from the flags, or NULL */
    char *name;                  /* subscriber name */
    zcert_t *cert;               /* CURVE key pair (borrowed), or NULL */
    char *publisher_key;         /* with cert: the publisher's public key */
    volatile sig_atomic_t *stop; /* set by the signal handler */
    rt_apply_t *apply;           /* the replica side, borrowed from rt_link_start to rt_link_end */
    rt_client_t c;               /* the conversation's sockets, run, heads and timers */
    rt_streamed_t *streamed;     /* a transaction applied while it runs, or NULL */
    rt_record_decoder_t *dec;    /* decodes REC frames */
    int result;                  /* non-zero: the run ends with this status */
    char *resync_tables;         /* RESYNC of chosen tables: "schema.table" lines (malloc'd) */

    int state;             /* s_state_t */
    char *source;          /* source name from PONG */
    uint64_t tentative_to; /* last seq of the open replica transaction that came live and
                            * is not known stored yet (0: none): its commit is marked */
    bool hello_lsn;        /* the last HELLO carried the applied record's commit LSN */
    int64_t hello_at_ms;   /* S_SOURCE: HELLO not before this */
    zlistx_t *held_recs;   /* s_held_t, by seq */
    size_t held_bytes;     /* their REC bytes */

    int64_t last_flush_ms; /* when the replica was last asked to flush (s_flush) */

    bool replica_down;        /* apply must (re)connect before applying */
    int64_t replica_retry_ms; /* when to try it */
    int replica_backoff_ms;   /* next delay */
    bool held;                /* applying paused after an apply error */
    int64_t held_until_ms;    /* when to retry */
    int retry_backoff_ms;     /* next delay */
    int quick_retries;        /* applied again at once since the last commit */
    uint64_t careful_until;   /* up to this seq (the last that failed) no grouping */

    bool ready_logged;   /* the "ready:" line was written */
    bool paused;         /* the publisher paused this subscriber */
    uint64_t reconnects; /* reconnections to the publisher since start */
};

static int s_held_cmp(const void *a, const void *b)
{
    uint64_t x = ((const s_held_t *)a)->seq, y = ((const s_held_t *)b)->seq;
    return x < y ? -1 : x > y;
}

rt_link_t *rt_link_new(const rt_link_opts_t *opts, volatile sig_atomic_t *stop)
{
    rt_link_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->publisher = strdup(opts->publisher);
    self->cert = opts->cert;
    self->publisher_key = opts->publisher_key ? strdup(opts->publisher_key) : NULL;
    self->pub_override = opts->pub && *opts->pub ? strdup(opts->pub) : NULL;
    self->name = strdup(opts->name);
    self->dec = rt_record_decoder_new();
    self->held_recs = zlistx_new();
    if (self->held_recs)
        zlistx_set_comparator(self->held_recs, s_held_cmp);
    self->stop = stop;
    if (opts->target && !(self->streamed = rt_streamed_new(opts->target, stop))) {
        rt_link_destroy(&self);
        return NULL;
    }
    if (!self->publisher || !self->name || !self->dec || !self->held_recs ||
        (opts->pub && *opts->pub && !self->pub_override)) {
        rt_link_destroy(&self);
        return NULL;
    }
    rt_client_init(&self->c, self->publisher, self->name, self->pub_override, self->cert,
                   self->publisher_key);
    self->replica_backoff_ms = S_RECONNECT_MIN_MS;
    self->retry_backoff_ms = S_RETRY_MIN_MS;
    return self;
}

static void s_close_sockets(rt_link_t *self)
{
    zsock_destroy(&self->c.dealer);
    zsock_destroy(&self->c.sub);
}

/* Forgets the held records. */
static void s_drop_held(rt_link_t *self)
{
    s_held_t *h;
    while ((h = zlistx_detach(self->held_recs, NULL))) {
        zmq_msg_close(&h->rec);
        free(h);
    }
    self->held_bytes = 0;
}

void rt_link_destroy(rt_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_link_t *self = *self_p;
    s_close_sockets(self);
    s_drop_held(self);
    zlistx_destroy(&self->held_recs);
    rt_record_decoder_destroy(&self->dec);
    rt_streamed_destroy(&self->streamed);
    free(self->publisher);
    free(self->publisher_key);
    free(self->pub_override);
    free(self->name);
    free(self->source);
    free(self->resync_tables);
    free(self);
    *self_p = NULL;
}

uint64_t rt_link_bad_frames(const rt_link_t *self)
{
    return self->c.bad_frames;
}

/* ---------------------------------------------------------------------------------
 * Sending. */

static int s_sub_state(const rt_link_t *self)
{
    if (self->paused)
        return RT_SUB_PAUSED;
    if (self->held || self->replica_down)
        return RT_SUB_ERROR;
    uint64_t next = rt_apply_next_seq(self->apply);
    bool behind = self->c.known_head >= next;
    if (behind && rt_apply_last_error(self->apply)[0])
        return RT_SUB_ERROR; /* retrying what failed, not yet past it */
    return rt_client_sub_state(&self->c, false, next);
}

static void s_apply_failed(rt_link_t *self, int rc, int64_t now);

/* Has the replica flush its WAL up to the last commit when it did not since
 * RT_CLIENT_ACK_MIN_MS (rt_apply_flush): what ACK reports is durable. */
static void s_flush(rt_link_t *self, int64_t now)
{
    if (now - self->last_flush_ms < RT_CLIENT_ACK_MIN_MS || rt_apply_in_txn(self->apply) ||
        rt_apply_durable_seq(self->apply) >= rt_apply_applied_seq(self->apply))
        return;
    self->last_flush_ms = now;
    int rc = rt_apply_flush(self->apply);
    if (rc != RT_OK)
        s_apply_failed(self, rc, now);
}

/* ACK: the seq up to which the replica has the commits on disk; the publisher keeps
 * every record past it. */
static void s_send_ack(rt_link_t *self, int64_t now)
{
    char error[RT_ERROR_TEXT_MAX + 1];
    s_flush(self, now);
    snprintf(error, sizeof error, "%s", rt_apply_last_error(self->apply));
    rt_msg_t m = {.type = RT_MSG_ACK,
                  .seq = rt_apply_durable_seq(self->apply),
                  .state = s_sub_state(self),
                  .conflicts = rt_apply_conflicts(self->apply),
                  .commit_ts = rt_apply_last_commit_ts(self->apply),
                  .applied_at = rt_apply_last_applied_at(self->apply),
                  .text = error};
    (void)rt_client_ack(&self->c, &m, now);
    /* Due again while what it says is behind what is committed. */
    self->c.ack_due = m.seq < rt_apply_applied_seq(self->apply);
}

/* ---------------------------------------------------------------------------------
 * Connection management. */

/* Opens the DEALER to the publisher and sends PING. RT_EINVAL when the socket could
 * not be made (logged: an endpoint ZeroMQ rejects). */
static int s_connect(rt_link_t *self, int64_t now)
{
    int rc = rt_client_connect(&self->c, now);
    if (rc == RT_OK)
        self->state = S_PINGING;
    return rc;
}

/* Commits complete source transactions or rolls back a partial one. */
static void s_commit(rt_link_t *self);

/* The seq of the next record to take: main's next, or while the records of a transaction
 * applied on the side session are taken, the next of those. */
static uint64_t s_next(const rt_link_t *self)
{
    uint64_t t = self->streamed ? rt_streamed_next(self->streamed) : 0;
    return t ? t : rt_apply_next_seq(self->apply);
}

/* Gives up the transaction applied on the side session, if any. */
static void s_stream_reset(rt_link_t *self, const char *why)
{
    if (self->streamed)
        rt_streamed_reset(self->streamed, why);
}

/* The last seq of the open replica transaction not yet known stored by the publisher,
 * 0 when none (a rolled back transaction holds none). */
static uint64_t s_tentative(const rt_link_t *self)
{
    return rt_apply_in_txn(self->apply) ? self->tentative_to : 0;
}

/* True when the open replica transaction may commit now: it ends with a whole source
 * transaction, stored by the publisher or not (protocol.md, "Live records and
 * durability": a commit of unstored records also records their commit LSN, by which a
 * later run of the publisher finds them). */
static bool s_commit_ok(const rt_link_t *self)
{
    return rt_apply_commit_ready(self->apply);
}

/* Commits what may commit, else rolls back the open transaction; drops held records. */
static void s_commit_or_rollback(rt_link_t *self)
{
    if (s_commit_ok(self))
        s_commit(self);
    else if (rt_apply_in_txn(self->apply))
        rt_apply_rollback(self->apply);
    self->tentative_to = 0;
    s_drop_held(self);
    s_stream_reset(self, "the link to the publisher ended");
}

/* The group is due: commits it if it ends with a whole source transaction. */
static void s_try_commit(rt_link_t *self)
{
    if (rt_apply_commit_ready(self->apply))
        s_commit(self);
}

/* Drops both sockets and schedules a reconnection with back-off. */
static void s_link_lost(rt_link_t *self, const char *why, int64_t now)
{
    self->reconnects++;
    s_commit_or_rollback(self);
    rt_client_lost(&self->c, why, now);
    self->state = S_DOWN;
}

/* ---------------------------------------------------------------------------------
 * The replica side. */

static void s_apply_failed(rt_link_t *self, int rc, int64_t now)
{
    self->tentative_to = 0; /* the open transaction was rolled back */
    s_drop_held(self);
    s_stream_reset(self, "applying failed");
    if (rc == RT_EAGAIN)
        return; /* stopping */
    if (rc == RT_ENOMEM) {
        rt_error("out of memory while applying seq %" PRIu64, rt_apply_next_seq(self->apply));
        self->result = RT_ENOMEM;
        return;
    }
    if (!rt_apply_connected(self->apply)) {
        self->replica_down = true;
        self->replica_retry_ms = now + self->replica_backoff_ms;
        rt_warn("reconnecting to the replica in %.1f s", self->replica_backoff_ms / 1000.0);
        self->replica_backoff_ms *= 2;
        if (self->replica_backoff_ms > S_RECONNECT_MAX_MS)
            self->replica_backoff_ms = S_RECONNECT_MAX_MS;
        return;
    }
    if (rc == RT_EDB && rt_apply_transient(self->apply) && self->quick_retries < S_QUICK_RETRIES) {
        /* A deadlock or a serialization failure took back records applied before the
         * one that failed: they are fetched and applied again now. */
        self->quick_retries++;
        self->held = true;
        self->held_until_ms = now;
        rt_info("applying the replica transaction again from seq %" PRIu64 ", its first record",
                rt_apply_next_seq(self->apply));
        return;
    }
    self->held = true;
    self->held_until_ms = now + self->retry_backoff_ms;
    rt_warn("subscriber %s stopped applying: retrying from seq %" PRIu64 " in %d s", self->name,
            rt_apply_next_seq(self->apply), self->retry_backoff_ms / 1000);
    self->retry_backoff_ms *= 2;
    if (self->retry_backoff_ms > S_RETRY_MAX_MS)
        self->retry_backoff_ms = S_RETRY_MAX_MS;
    self->c.ack_due = true; /* report the error state */
}

/* After a commit: the ACK is due, and the replica flushes when it did not lately
 * (between transactions, which a steady stream of records leaves few of). */
static void s_committed(rt_link_t *self)
{
    self->tentative_to = 0;
    self->c.ack_due = true;
    self->retry_backoff_ms = S_RETRY_MIN_MS;
    self->quick_retries = 0;
    s_flush(self, rt_mono_ms());
}

static void s_commit(rt_link_t *self)
{
    uint64_t last = rt_apply_next_seq(self->apply) - 1;
    if (s_tentative(self))
        rt_apply_mark_group(self->apply);
    self->tentative_to = 0;
    int rc = rt_apply_commit(self->apply);
    if (rc != RT_OK) {
        self->careful_until = last;
        s_apply_failed(self, rc, rt_mono_ms());
        return;
    }
    s_committed(self);
}

/* True when the transaction rec ends commits as soon as it is applied: it is the whole
 * group (nothing else open, nothing waiting on either socket to join it, no held
 * record next, no FETCH outstanding whose records it would rather wait for). */
static bool s_commit_now(const rt_link_t *self, const rt_record_t *rec)
{
    if (!(rec->flags & RT_REC_LAST) || rt_apply_in_txn(self->apply) ||
        zlistx_size(self->held_recs) > 0 || rt_fetch_window_busy(&self->c.fetch))
        return false;
    return !(self->c.dealer && (zsock_events(self->c.dealer) & ZMQ_POLLIN)) &&
           !(self->c.sub && (zsock_events(self->c.sub) & ZMQ_POLLIN));
}

/* Connects the replica for the current source when due. Returns true when ready. */
static bool s_replica_ready(rt_link_t *self, int64_t now)
{
    uint64_t applied = 0;
    if (!self->replica_down && rt_apply_connected(self->apply))
        return true;
    if (now < self->replica_retry_ms)
        return false;
    uint64_t had = rt_apply_applied_seq(self->apply);
    int rc = rt_apply_connect(self->apply, self->source, &applied);
    if (rc == RT_EAGAIN)
        return false;
    if (rc == RT_EINVAL || rc == RT_ENOMEM) {
        self->result = rc == RT_EINVAL ? RT_EPROTO : rc; /* the source name came from the peer */
        return false;
    }
    if (rc != RT_OK) {
        self->replica_retry_ms = rt_mono_ms() + self->replica_backoff_ms;
        rt_warn("replica not available; retrying in %.1f s", self->replica_backoff_ms / 1000.0);
        self->replica_backoff_ms *= 2;
        if (self->replica_backoff_ms > S_RECONNECT_MAX_MS)
            self->replica_backoff_ms = S_RECONNECT_MAX_MS;
        return false;
    }
    if (self->replica_down && applied < had)
        rt_warn("connected to the replica %s again; applied seq %" PRIu64 ", not %" PRIu64
                ": its server lost the commits not yet on its disk (never acknowledged to "
                "the publisher); continuing from seq %" PRIu64,
                rt_apply_target(self->apply), applied, had, applied + 1);
    else if (self->replica_down)
        rt_info("connected to the replica %s again; applied seq %" PRIu64
                ", continuing from seq %" PRIu64,
                rt_apply_target(self->apply), applied, applied + 1);
    self->replica_down = false;
    self->replica_backoff_ms = S_RECONNECT_MIN_MS;
    if (self->streamed)
        rt_streamed_connect(self->streamed, self->source);
    return true;
}

/* ---------------------------------------------------------------------------------
 * Receiving. */

/* What a message of the publisher's run says: head is stored. A message of another run
 * means the publisher restarted: the records it had published but not stored are gone,
 * and may come again under other seqs, so the open transaction ends (committed if it
 * ends with a whole source transaction, else rolled back) and the link starts over: HELLO
 * from the replica's progress, with its commit LSN when the publisher had not stored it.
 * Returns false then. */
static bool s_note_run(rt_link_t *self, uint64_t run_id, uint64_t head, int64_t now)
{
    uint64_t was = self->c.run_id;
    if (!rt_client_note_run(&self->c, run_id, head)) {
        char why[160];
        snprintf(why, sizeof why,
                 "the publisher restarted (run %016" PRIx64 ", was %016" PRIx64 ")%s", run_id, was,
                 s_tentative(self) && !s_commit_ok(self)
                     ? ": rolled back the records it had not stored"
                     : "");
        s_link_lost(self, why, now);
        rt_client_restart(&self->c, now);
        return false;
    }
    if (self->tentative_to && self->tentative_to <= self->c.durable_head)
        self->tentative_to = 0;
    return true;
}

/* Keeps a live record that came past a gap, to apply once FETCH filled it; past the
 * limits it is dropped (and fetched). The frame is shared with the received one
 * (zmq_msg_copy counts references), not copied. */
static void s_hold(rt_link_t *self, uint64_t seq, zmq_msg_t *frame, bool from_dealer,
                   const rt_msg_t *live)
{
    size_t len = zmq_msg_size(frame);
    if (zlistx_size(self->held_recs) >= S_HELD_MAX || self->held_bytes + len > S_HELD_MAX_BYTES)
        return;
    s_held_t key = {.seq = seq};
    if (zlistx_find(self->held_recs, &key))
        return; /* held already */
    s_held_t *h = calloc(1, sizeof *h);
    if (!h || zmq_msg_init(&h->rec) != 0 || zmq_msg_copy(&h->rec, frame) != 0) {
        if (h)
            zmq_msg_close(&h->rec);
        free(h);
        return;
    }
    h->seq = seq;
    h->from_dealer = from_dealer;
    h->live = live != NULL;
    h->run_id = live ? live->run_id : 0;
    h->head = live ? live->head_seq : 0;
    if (!zlistx_insert(self->held_recs, h, false)) {
        zmq_msg_close(&h->rec);
        free(h);
        return;
    }
    self->held_bytes += len;
}

/* Applies the blocks of the side's transaction that are due, first committing main's group
 * when one waits for it. */
static void s_stream_drain(rt_link_t *self)
{
    if (!self->streamed || self->paused || self->held || self->replica_down ||
        self->state != S_STREAMING || !rt_apply_connected(self->apply))
        return;
    if (rt_streamed_wants_commit(self->streamed, self->apply) && s_commit_ok(self))
        s_commit(self);
    rt_streamed_drain(self->streamed, self->apply);
}

static void s_on_record(rt_link_t *self, zmq_msg_t *frame, bool from_dealer, const rt_msg_t *live,
                        bool released, int64_t now)
{
    const void *data = zmq_msg_data(frame);
    size_t len = zmq_msg_size(frame);
    const rt_record_t *rec;
    if (rt_record_decode(self->dec, data, len, &rec) != RT_OK) {
        rt_client_bad(&self->c, "a REC that does not decode", now);
        return;
    }
    if (self->state != S_STREAMING)
        return;
    if (live) {
        if (!s_note_run(self, live->run_id, live->head_seq, now))
            return;
        if (self->streamed)
            rt_streamed_live(self->streamed, rec->seq);
    } else if (from_dealer && !released) {
        rt_client_fetched_record(&self->c, rec->seq, len, now); /* answering a FETCH: stored */
    } else {
        rt_client_note_head(&self->c, rec->seq);
    }
    if (self->paused || self->replica_down || self->held || !rt_apply_connected(self->apply))
        return;
    if (rec->seq < s_next(self))
        return; /* a duplicate */
    if (!released && live && self->c.run_id && rec->seq > s_next(self)) {
        /* Live past a gap: applied once FETCH filled it (under load the live stream runs
         * ahead of what FETCH can serve, the stored records, by the commit under way:
         * dropping it would keep the subscriber fetching for as long as the load lasts). */
        s_hold(self, rec->seq, frame, from_dealer, live);
        return;
    }
    if (rec->seq != s_next(self))
        return; /* past a gap that FETCH fills */
    bool tentative = live && self->c.run_id && rec->seq > self->c.durable_head;
    if (self->streamed) {
        if (rt_streamed_first(self->streamed, rec->seq)) {
            if (rt_apply_in_txn(self->apply))
                s_commit(self); /* the side's commit comes next, with nothing open before it */
            if (rt_apply_in_txn(self->apply) || self->held || !rt_apply_connected(self->apply))
                return;
            s_stream_drain(self); /* the blocks that waited for that commit */
        }
        int took = rt_streamed_take(self->streamed, self->apply, rec, tentative);
        if (took == RT_STREAMED_TAKEN)
            return;
        if (took == RT_STREAMED_COMMITTED) {
            s_committed(self);
            return;
        }
        if (took < 0) {
            /* Main applies them from the transaction's first record. */
            s_drop_held(self);
            if (!rt_apply_connected(self->apply))
                s_apply_failed(self, RT_EIO, now);
            return;
        }
    }
    bool commit = s_commit_now(self, rec);
    int rc = commit ? rt_apply_record_commit(self->apply, rec, len, tentative)
                    : rt_apply_record(self->apply, rec, len);
    if (rc != RT_OK) {
        self->careful_until = rec->seq;
        s_apply_failed(self, rc, now);
        return;
    }
    if (commit && !rt_apply_in_txn(self->apply)) {
        s_committed(self);
        return;
    }
    if (tentative)
        self->tentative_to = rec->seq;
    /* After a failure, commit each source transaction until past the failing seq,
     * so the replica's progress stops right before it. */
    if (rt_apply_group_full(self->apply) || rec->seq <= self->careful_until)
        s_try_commit(self);
    s_stream_drain(self);
}

static void s_on_pong(rt_link_t *self, rt_msg_t *m)
{
    if (self->state != S_PINGING) {
        rt_client_note_head(&self->c, m->head_seq);
        return;
    }
    if (self->source && strcmp(self->source, m->source) != 0) {
        rt_warn("the publisher at %s now serves source %s (was %s)", self->publisher, m->source,
                self->source);
        rt_apply_close(self->apply);
    }
    if (!self->source || strcmp(self->source, m->source) != 0) {
        free(self->source);
        self->source = m->source;
        m->source = NULL;
    }
    rt_client_note_head(&self->c, m->head_seq);
    self->state = S_SOURCE;
}

/* Sends HELLO once the replica is ready (state S_SOURCE). */
static void s_hello(rt_link_t *self, int64_t now)
{
    if (now < self->hello_at_ms)
        return;
    /* The publisher counts HELLO's seq as acknowledged: it is on the replica's disk. */
    int rc = rt_apply_flush(self->apply);
    if (rc != RT_OK) {
        s_apply_failed(self, rc, now);
        return;
    }
    uint64_t applied = rt_apply_applied_seq(self->apply);
    rt_msg_t m = {.type = RT_MSG_HELLO, .name = self->name, .seq = applied};
    self->hello_lsn = rt_apply_mark(self->apply, &m.lsn);
    if (self->hello_lsn)
        m.flags = RT_HELLO_LSN;
    if (self->pub_override && rt_client_subscribe(&self->c, NULL) != RT_OK) {
        self->result = RT_EINVAL;
        return;
    }
    (void)rt_client_send(&self->c, &m);
    self->state = S_HELLO;
    if (!self->ready_logged) {
        rt_daemon_ready("subscriber %s applying source %s into %s from seq %" PRIu64, self->name,
                        self->source, rt_apply_target(self->apply), applied + 1);
        self->ready_logged = true;
    }
    if (self->hello_lsn && !self->hello_at_ms) {
        char lsn[32];
        rt_info("HELLO at seq %" PRIu64 " (commit LSN %s), committed before the publisher had "
                "stored it",
                applied, rt_lsn_format(m.lsn, lsn, sizeof lsn));
    }
}

static void s_on_welcome(rt_link_t *self, const rt_msg_t *m, int64_t now)
{
    if (self->state != S_HELLO)
        return;
    self->hello_at_ms = 0;
    if (strcmp(m->source, self->source) != 0) {
        char why[256];
        snprintf(why, sizeof why, "WELCOME names source %.100s, PONG named %.100s", m->source,
                 self->source);
        s_link_lost(self, why, now);
        return;
    }
    uint64_t applied = rt_apply_applied_seq(self->apply);
    if (self->hello_lsn && m->seq != applied) {
        /* A run that numbered anew the records this replica committed before they were
         * stored: the same point, under this run's seq. */
        rt_info("the publisher's new run numbered anew the records this replica committed "
                "before they were stored: seq %" PRIu64 " is seq %" PRIu64 " now",
                applied, m->seq);
        int rc = rt_apply_reset(self->apply, m->seq);
        if (rc != RT_OK) {
            s_apply_failed(self, rc, now);
            s_link_lost(self, "the replica's progress could not be moved", now);
            return;
        }
        applied = m->seq;
    }
    if (applied + 1 < m->first_seq) {
        rt_error("the publisher's outbox starts at seq %" PRIu64
                 " but this replica needs seq %" PRIu64
                 ": the records were trimmed; copy it again with `rtctl resync %s` (then "
                 "start this subscriber again)",
                 m->first_seq, applied + 1, self->name);
        self->result = RT_ETRIMMED;
        return;
    }
    if (m->head_seq < applied)
        rt_warn("the replica has applied seq %" PRIu64 " but the publisher's head is %" PRIu64
                ": is this the outbox the replica was fed from?",
                applied, m->head_seq);
    if (rt_client_subscribe(&self->c, m->endpoint) != RT_OK) {
        s_link_lost(self, "the publisher's PUB endpoint cannot be used", now);
        return;
    }
    rt_client_welcome(&self->c, m);
    self->tentative_to = 0;
    self->state = S_STREAMING;
    self->c.last_ack_ms = now;
    if (m->paused != self->paused)
        rt_info("the publisher has this subscriber %s", m->paused ? "paused" : "resumed");
    self->paused = m->paused;
    rt_info("streaming source %s from %s: outbox seq %" PRIu64 "..%" PRIu64 ", applied %" PRIu64,
            self->source, self->publisher, m->first_seq, m->head_seq, applied);
}

/* PAUSE / RESUME from the publisher. */
static void s_set_paused(rt_link_t *self, bool paused, int64_t now)
{
    if (self->state != S_STREAMING || paused == self->paused)
        return;
    self->paused = paused;
    if (paused) {
        /* Keep what is complete and stored, drop the rest. */
        s_commit_or_rollback(self);
        rt_fetch_window_forget(&self->c.fetch);
        rt_info("paused by the publisher at applied seq %" PRIu64 "; applying nothing until "
                "resumed",
                rt_apply_applied_seq(self->apply));
    } else {
        rt_fetch_window_reset(&self->c.fetch);
        rt_info("resumed by the publisher; continuing from seq %" PRIu64,
                rt_apply_next_seq(self->apply));
    }
    s_send_ack(self, now);
}

/* REPLAY from the publisher: its range is resolved (from_seq .. last_seq). */
static void s_on_replay(rt_link_t *self, const rt_msg_t *m, int64_t now)
{
    if (self->state != S_STREAMING)
        return;
    if (m->seq == 0 || m->last_seq < m->seq) {
        rt_client_bad(&self->c, "a REPLAY with an empty range", now);
        return;
    }
    if (m->flags & RT_REPLAY_RESET) {
        if (self->replica_down || !rt_apply_connected(self->apply)) {
            rt_error("replay with reset from seq %" PRIu64 " refused: the replica is not "
                     "connected; run the replay again once it is",
                     m->seq);
            return;
        }
        s_drop_held(self);
        self->tentative_to = 0;
        int rc = rt_apply_reset(self->apply, m->seq - 1);
        if (rc != RT_OK) {
            s_apply_failed(self, rc, now);
            return;
        }
        rt_apply_set_remote_until(self->apply, m->last_seq);
        self->careful_until = 0;
        rt_fetch_window_forget(&self->c.fetch);
        rt_info("replay with reset: re-applying seqs %" PRIu64 "..%" PRIu64
                " with conflict policy apply_remote",
                m->seq, m->last_seq);
    } else {
        rt_info("replay of seqs %" PRIu64 "..%" PRIu64 " asked: applied seq %" PRIu64
                ", retrying now",
                m->seq, m->last_seq, rt_apply_applied_seq(self->apply));
    }
    self->held = false;
    self->retry_backoff_ms = S_RETRY_MIN_MS;
    self->replica_retry_ms = now; /* a replica that was down: try it again now */
    self->replica_backoff_ms = S_RECONNECT_MIN_MS;
    self->c.fetch.not_before_ms = 0;
    rt_client_note_head(&self->c, m->last_seq);
    s_send_ack(self, now);
}

static void s_on_msg(void *ctx, rt_msg_t *m, int64_t now)
{
    rt_link_t *self = ctx;
    switch (m->type) {
    case RT_MSG_PONG: s_on_pong(self, m); break;
    case RT_MSG_WELCOME: s_on_welcome(self, m, now); break;
    case RT_MSG_HUGZ:
        if (self->state == S_STREAMING)
            (void)s_note_run(self, m->run_id, m->head_seq, now);
        break;
    case RT_MSG_FETCHED:
        if (self->state == S_STREAMING && s_note_run(self, m->run_id, m->head_seq, now))
            (void)rt_client_fetched(&self->c, m, now); /* the same run: true */
        break;
    case RT_MSG_ERROR:
        if (m->code == RT_ETRIMMED) {
            rt_error("the publisher no longer has the records this replica needs (from seq %" PRIu64
                     "): %s; copy it again with `rtctl resync %s` (then start this "
                     "subscriber again)",
                     rt_apply_applied_seq(self->apply) + 1, m->text, self->name);
            self->result = RT_ETRIMMED;
        } else if (m->code == RT_EAGAIN && self->state == S_HELLO) {
            /* Its applied seq is not stored yet (a publisher restarted under way): ask
             * again shortly. */
            rt_debug("the publisher: %s", m->text);
            self->state = S_SOURCE;
            self->hello_at_ms = now + S_HELLO_AGAIN_MS;
        } else {
            rt_warn("the publisher reported an error: %s (%s)", m->text, rt_strerror((int)m->code));
        }
        break;
    case RT_MSG_PAUSE:
    case RT_MSG_RESUME:
        if (strcmp(m->name, self->name) != 0) {
            rt_client_bad(&self->c, "a PAUSE or RESUME naming another subscriber", now);
            break;
        }
        s_set_paused(self, m->type == RT_MSG_PAUSE, now);
        break;
    case RT_MSG_REPLAY:
        if (strcmp(m->name, self->name) != 0) {
            rt_client_bad(&self->c, "a REPLAY naming another subscriber", now);
            break;
        }
        s_on_replay(self, m, now);
        break;
    case RT_MSG_SKIP:
        if (strcmp(m->name, self->name) != 0) {
            rt_client_bad(&self->c, "a SKIP naming another subscriber", now);
            break;
        }
        rt_apply_skip_ddl(self->apply, m->seq);
        if (self->held) {
            self->held_until_ms = now; /* the record it stopped at: retry it now */
            self->retry_backoff_ms = S_RETRY_MIN_MS;
        }
        break;
    case RT_MSG_RESYNC:
        if (strcmp(m->name, self->name) != 0) {
            rt_client_bad(&self->c, "a RESYNC naming another subscriber", now);
            break;
        }
        if (m->text && m->text[0]) {
            free(self->resync_tables);
            if (!(self->resync_tables = strdup(m->text))) {
                self->result = RT_ENOMEM;
                break;
            }
            rt_info("the publisher asks for a resync of chosen tables (rtctl resync --table): "
                    "they are copied again while the others stream");
        } else {
            rt_info("the publisher asks for a resync (rtctl resync): every table is copied "
                    "again");
        }
        self->result = RT_ERESYNC;
        break;
    default: rt_client_bad(&self->c, "an unexpected message type", now); break;
    }
}

static void s_hook_record(void *ctx, zmq_msg_t *frame, bool from_dealer, const rt_msg_t *live,
                          int64_t now)
{
    s_on_record(ctx, frame, from_dealer, live, false, now);
}

/* A block of a transaction still running, its abort or its commit (the SUB). */
static void s_hook_stream(void *ctx, rt_msg_t *m, int64_t now)
{
    rt_link_t *self = ctx;
    (void)now;
    if (!self->streamed || self->state != S_STREAMING || self->paused || !self->c.run_id ||
        m->run_id != self->c.run_id)
        return;
    rt_streamed_on_msg(self->streamed, self->apply, self->source, m);
    s_stream_drain(self);
}

static const rt_client_hooks_t s_hooks = {
    .record = s_hook_record, .message = s_on_msg, .stream = s_hook_stream};

/* Applies the held records that are next, in seq order; drops those already applied. */
static void s_release(rt_link_t *self, int64_t now)
{
    uint64_t epoch = self->reconnects;
    s_held_t *h;
    while (self->reconnects == epoch && self->result == RT_OK && !self->paused && !self->held &&
           !self->replica_down && rt_apply_connected(self->apply) &&
           (h = zlistx_first(self->held_recs)) && h->seq <= s_next(self)) {
        zlistx_detach(self->held_recs, NULL);
        size_t len = zmq_msg_size(&h->rec);
        self->held_bytes -= len;
        rt_msg_t live = {.type = RT_MSG_LIVE, .run_id = h->run_id, .head_seq = h->head};
        s_on_record(self, &h->rec, h->from_dealer, h->live ? &live : NULL, true, now);
        zmq_msg_close(&h->rec);
        free(h);
    }
}

/* ---------------------------------------------------------------------------------
 * Timers. */

static void s_maybe_fetch(rt_link_t *self, int64_t now)
{
    if (self->paused || self->replica_down || self->held || !rt_apply_connected(self->apply))
        return;
    (void)rt_client_fetch(&self->c, s_next(self), self->c.known_head, true, now);
}

static void s_timers(rt_link_t *self, int64_t now)
{
    switch (self->state) {
    case S_DOWN:
        if (rt_client_reconnect_due(&self->c, now)) {
            int rc = s_connect(self, now);
            if (rc != RT_OK)
                self->result = rc;
        }
        break;
    case S_PINGING: rt_client_ping(&self->c, now); break;
    case S_SOURCE:
        rt_client_ping(&self->c, now);
        if (s_replica_ready(self, now))
            s_hello(self, now);
        break;
    case S_HELLO: break;
    case S_STREAMING:
        if (self->held && now >= self->held_until_ms) {
            self->held = false;
            rt_info("retrying from seq %" PRIu64, rt_apply_next_seq(self->apply));
        }
        if (self->replica_down)
            (void)s_replica_ready(self, now);
        s_maybe_fetch(self, now);
        if (rt_client_ack_due(&self->c, now))
            s_send_ack(self, now);
        break;
    }
    if (self->state != S_STREAMING || rt_apply_group_full(self->apply) ||
        rt_apply_txn_age_ms(self->apply) >= S_GROUP_MAX_MS)
        s_try_commit(self);
    s_release(self, now);
    s_stream_drain(self);
}

/* True while a group that could commit should rather wait for the records of the
 * outstanding FETCHes (catching up), within S_GROUP_MAX_MS. */
static bool s_hold_group(const rt_link_t *self, const rt_apply_t *apply)
{
    return rt_fetch_window_busy(&self->c.fetch) && self->state == S_STREAMING && !self->paused &&
           rt_apply_txn_age_ms(apply) < S_GROUP_MAX_MS;
}

void rt_link_start(rt_link_t *self, rt_apply_t *apply)
{
    self->apply = apply;
    self->state = S_DOWN;
    self->c.reconnect_at_ms = rt_mono_ms();
    self->result = RT_OK;
}

int rt_link_tick(rt_link_t *self)
{
    s_timers(self, rt_mono_ms());
    return self->result;
}

int rt_link_poll_items(const rt_link_t *self, zmq_pollitem_t *items)
{
    return rt_client_poll_items(&self->c, items);
}

long rt_link_timeout(const rt_link_t *self)
{
    /* A group waiting to commit only waits for input that is already there, unless
     * FETCHes are outstanding: then it waits for them up to its age limit. */
    long timeout = S_POLL_MS;
    bool hold = s_hold_group(self, self->apply);
    if (s_commit_ok(self))
        timeout = hold ? S_GROUP_MAX_MS - rt_apply_txn_age_ms(self->apply) : 0;
    if (timeout > S_POLL_MS)
        timeout = S_POLL_MS;
    return timeout;
}

int rt_link_handle(rt_link_t *self, const zmq_pollitem_t *items, int n)
{
    int64_t now = rt_mono_ms();
    bool input = false;
    /* What is waiting on each socket, up to a batch, without polling again; a lost
     * link (sockets closed) ends it. */
    uint64_t epoch = self->reconnects;
    for (int i = 0; i < n; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        input = true;
        for (int k = 0; k < S_RECV_BATCH; k++)
            if (*self->stop || self->result != RT_OK || self->reconnects != epoch ||
                !rt_client_recv(&self->c, items[i].socket, &s_hooks, self, now))
                break;
    }
    s_release(self, now);
    if (input)
        return self->result;
    /* Nothing waiting: commit the group, and notice a silent publisher. */
    if (!s_hold_group(self, self->apply))
        s_try_commit(self);
    s_release(self, now);
    const char *why = self->state != S_DOWN ? rt_client_silence(&self->c, now) : NULL;
    if (why)
        s_link_lost(self, why, now);
    return self->result;
}

char *rt_link_take_resync_tables(rt_link_t *self)
{
    char *t = self->resync_tables;
    self->resync_tables = NULL;
    return t;
}

int rt_link_end(rt_link_t *self)
{
    /* Stopping: roll back what is not committed and send nothing more. */
    if (rt_apply_in_txn(self->apply))
        rt_apply_rollback(self->apply);
    s_stream_reset(self, "stopping");
    s_drop_held(self);
    self->tentative_to = 0;
    s_close_sockets(self);
    self->state = S_DOWN;
    self->apply = NULL;
    return self->result;
}

void rt_link_metrics(const rt_link_t *self, const rt_apply_t *apply, rt_metrics_subscriber_t *m)
{
    memset(m, 0, sizeof *m);
    m->name = self->name;
    m->publisher = self->publisher;
    m->source = self->source;
    m->state = self->state == S_STREAMING ? s_sub_state(self) : RT_SUB_OFFLINE;
    m->connected = self->state == S_STREAMING;
    m->error = self->apply && s_sub_state(self) == RT_SUB_ERROR; /* no apply: not started */
    m->applied_seq = rt_apply_applied_seq(apply);
    m->head_seq = self->c.known_head;
    m->applied_txns = rt_apply_applied_txns(apply);
    m->streamed_txns = self->streamed ? rt_streamed_committed(self->streamed) : 0;
    m->applied_rows = rt_apply_applied_rows(apply);
    m->sequences_moved = rt_apply_sequences_moved(apply);
    m->ddl_applied = rt_apply_ddl_applied(apply);
    m->lag_records = self->c.known_head > m->applied_seq ? self->c.known_head - m->applied_seq : 0;
    int64_t ts = rt_apply_last_commit_ts(apply);
    m->lag_seconds = m->lag_records && ts ? (rt_pg_now_us() - ts) / 1e6 : 0;
    m->conflicts = rt_apply_conflicts(apply);
    m->reconnects = self->reconnects;
    m->bad_frames = self->c.bad_frames;
}
