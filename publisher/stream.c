/* publisher/stream.c - the publisher's ZeroMQ side: PUB fan-out and the ROUTER conversation.
 *
 * PUB carries every record once, best effort, as soon as the capture has built it
 * (rt_stream_publish_live: LIVE + REC, before it is durable), then HUGZ{stored head}
 * after each outbox commit and when idle.
 * FETCH, WELCOME, FETCHED and HUGZ serve and announce only stored (durable) records.
 * ROUTER frames are [routing id][message] (peers are DEALERs); the conversation is
 * in schemas/protocol.md: HELLO/WELCOME, FETCH/FETCHED (credit-based: never more
 * records than asked) and ACK are answered here; PING, STATUS and the admin verbs of
 * rtctl (PAUSE, RESUME, FORGET, REPLAY) by admin.c, whose reply is sent back here;
 * the initial copy's SYNC, COPY, SYNC_KEEP and SYNC_END are checked here and handed to
 * the copy sessions (sync.c).
 * Subscribers and their acknowledgements live in the outbox's subscribers database;
 * a subscriber whose ACK state disagrees with its paused flag is told again, so a lost
 * PAUSE or RESUME notice is repaired within an ACK interval. */
#include "stream.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"
#include "peers.h"
#include "sock.h"
#include "stream_int.h"
#include "wire.h"

#define MAX_MESSAGES_PER_CALL 256
/* Messages queued per peer on the ROUTER, each way. A subscriber has at most 3 FETCHes
 * of 256 records out (771 messages with their FETCHED). libzmq learns that the peer's
 * connection took messages in steps of half this mark, so the count it checks can be
 * that much above the truth: 2048 keeps a subscriber that reads below it whatever the
 * step, and a send that fails on a full queue means a peer that does not read, which is
 * dropped (peers.h). Its bytes are capped well before (RT_PEERS_REPLIES replies). */
#define ROUTER_HWM 2048
#define MAX_FETCH_RECORDS 256
#define MAX_FETCH_BYTES (8u << 20)
#define HUGZ_INTERVAL_MS 1000
#define PERSIST_INTERVAL_MS 1000
#define TRIM_INTERVAL_MS 1000
#define TRIM_BATCH 10000
#define SAMPLES_MAX 8192

/* When a head seq became durable, for the retention window. */
struct rt_stream_sample_t {
    uint64_t seq;
    int64_t ms;
};

/* A random id for this run: a subscriber that sees another one knows the publisher
 * restarted and may have lost records it published but had not stored. */
static uint64_t s_new_run_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
        id = ((uint64_t)getpid() << 32) ^ (uint64_t)rt_mono_ms() ^ (uint64_t)time(NULL);
    return id ? id : 1;
}

static void s_bad_frame(rt_stream_t *self, const char *peer, const char *why)
{
    self->bad_frames++;
    if (self->bad_frames <= 10 || self->bad_frames % 1000 == 0)
        rt_warn("dropped a frame from %s: %s (%llu dropped so far)", peer ? peer : "a peer", why,
                (unsigned long long)self->bad_frames);
}

/* Sends [id][body] on the ROUTER without blocking; false if the peer is gone or full. A
 * peer whose queue is full does not read: it is dropped. */
static bool s_send_to(rt_stream_t *self, const char *id, size_t idlen, const void *body, size_t len)
{
    void *sock = zsock_resolve(self->router);
    if (zmq_send(sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() == EAGAIN)
            rt_peers_full(self->peers, id, idlen);
        return false;
    }
    if (zmq_send(sock, body, len, ZMQ_DONTWAIT) < 0)
        return false;
    rt_peers_queued(self->peers, id, idlen, len);
    return true;
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

rt_stream_sub_t *rt_stream_sub(rt_stream_t *self, const char *name, bool create)
{
    rt_stream_sub_t *s = zhashx_lookup(self->subs, name);
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

/* Sends a notice to the subscriber itself (its routing id is its name). */
bool rt_stream_notify(rt_stream_t *self, const char *name, const rt_msg_t *msg)
{
    void *frame;
    size_t len;
    if (rt_msg_encode(msg, &frame, &len) < 0)
        return false;
    bool sent = s_send_to(self, name, strlen(name), frame, len);
    free(frame);
    return sent;
}

/* The newest stored record: the head_seq announced to subscribers (WELCOME, FETCHED,
 * HUGZ) and the last one served. It is above the outbox's head_seq while
 * the chunks of a large transaction are being stored: subscribers apply them as they
 * come and commit at its last chunk. */
static uint64_t s_stored(rt_stream_t *self)
{
    return rt_outbox_next_seq(self->outbox) - 1;
}

/* HELLO from a subscriber that committed its applied seq before this publisher stored it:
 * finds where it stands in the records stored now (*applied). False when answered with an
 * ERROR instead: RT_EAGAIN (not stored that far yet: it asks again), or a failure. */
static bool s_resume(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m,
                     const rt_stream_sub_t *known, uint64_t *applied)
{
    char text[256], lsn[32];
    rt_lsn_format(m->lsn, lsn, sizeof lsn);
    int rc = rt_stream_resume_position(self->outbox, m->seq, m->lsn,
                                       known ? known->stored.acked_seq : 0, applied);
    if (rc == RT_OK) {
        if (*applied != m->seq)
            rt_info("subscriber %s applied seq %llu (commit LSN %s) of an earlier run, whose "
                    "unstored records this run numbered anew: it stands at seq %llu",
                    m->name, (unsigned long long)m->seq, lsn, (unsigned long long)*applied);
        return true;
    }
    if (rc == RT_EAGAIN)
        snprintf(text, sizeof text,
                 "subscriber %s applied seq %llu (commit LSN %s), which the outbox has not "
                 "stored yet: ask again",
                 m->name, (unsigned long long)m->seq, lsn);
    else if (rc == RT_ETRIMMED)
        snprintf(text, sizeof text,
                 "the records after commit LSN %s were trimmed from the outbox (oldest kept: "
                 "%llu); subscriber %s needs a resync",
                 lsn, (unsigned long long)rt_outbox_first_seq(self->outbox), m->name);
    else
        snprintf(text, sizeof text, "the outbox could not be read to place subscriber %s: %s",
                 m->name, rt_strerror(rc));
    if (rc != RT_EAGAIN)
        rt_warn("%s", text);
    s_send_error(self, id, idlen, rc, text);
    return false;
}

static void s_on_hello(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    rt_stream_sub_t *pending = rt_stream_sub(self, m->name, false);
    if (pending && pending->stored.resync) {
        /* rtctl resync: it copies every table again before it streams. */
        pending->last_seen_ms = rt_mono_ms();
        rt_info("subscriber %s connected: it has a resync to carry out", m->name);
        rt_msg_t r = {.type = RT_MSG_RESYNC, .name = m->name, .text = ""};
        s_send_msg(self, id, idlen, &r);
        return;
    }
    rt_outbox_pos_t pos = rt_outbox_position(self->outbox);
    uint64_t first = rt_outbox_first_seq(self->outbox);
    uint64_t applied = m->seq;
    if ((m->flags & RT_HELLO_LSN) && !s_resume(self, id, idlen, m, pending, &applied))
        return;
    if (applied + 1 < first && first <= pos.head_seq) {
        char text[256];
        snprintf(text, sizeof text,
                 "records %llu..%llu were trimmed from the outbox (oldest kept: %llu); "
                 "subscriber %s needs a resync",
                 (unsigned long long)(applied + 1), (unsigned long long)(first - 1),
                 (unsigned long long)first, m->name);
        rt_warn("%s", text);
        s_send_error(self, id, idlen, RT_ETRIMMED, text);
        return;
    }
    if (applied > pos.head_seq) {
        char text[256];
        snprintf(text, sizeof text,
                 "subscriber %s says it applied seq %llu but the outbox ends at %llu: it was "
                 "fed by another outbox",
                 m->name, (unsigned long long)applied, (unsigned long long)pos.head_seq);
        rt_error("%s", text);
        s_send_error(self, id, idlen, RT_EINVAL, text);
        return;
    }
    rt_stream_sub_t *s = rt_stream_sub(self, m->name, true);
    if (!s)
        return;
    bool known = s->last_seen_ms != 0;
    if (s->reset_from && applied >= s->reset_from)
        rt_warn("subscriber %s reconnected at seq %llu before it carried out the replay with "
                "reset from seq %llu; run the replay again",
                m->name, (unsigned long long)applied, (unsigned long long)s->reset_from);
    s->reset_from = 0;
    if (s->stored.keep_copied && applied < s->stored.keep_from) {
        s->stored.keep_from = 0; /* what it needs from here on, its acked_seq keeps */
        s->stored.keep_copied = false;
    }
    s->stored.acked_seq = applied;
    s->stored.state = applied < pos.head_seq ? RT_SUB_CATCHING_UP : RT_SUB_STREAMING;
    s->last_seen_ms = rt_mono_ms();
    s->dirty = true;
    if (!known)
        rt_info("subscriber %s connected at seq %llu (head %llu)", m->name,
                (unsigned long long)applied, (unsigned long long)pos.head_seq);
    if (!s->stored.enabled)
        rt_info("subscriber %s is paused: it applies nothing until rtctl resume", m->name);
    rt_msg_t w = {.type = RT_MSG_WELCOME,
                  .run_id = self->run_id,
                  .source = self->source,
                  .endpoint = self->pub_endpoint,
                  .first_seq = first,
                  .head_seq = s_stored(self),
                  .paused = !s->stored.enabled,
                  .seq = applied,
                  .version = m->version < 2 ? 2 : 0}; /* what a version 1 HELLO's sender reads */
    s_send_msg(self, id, idlen, &w);
}

typedef struct {
    rt_stream_t *self;
    const char *id;
    size_t idlen;
    uint64_t last;
    size_t bytes; /* of the records sent */
} s_fetch_ctx_t;

static int s_fetch_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_fetch_ctx_t *c = arg;
    if (!s_send_to(c->self, c->id, c->idlen, data, len))
        return 1; /* the peer is gone or full: it asks again */
    c->last = seq;
    c->bytes += len;
    return 0;
}

static void s_on_fetch(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(idlen < 127 ? idlen : 127), id);
    rt_stream_sub_t *s = rt_stream_sub(self, name, false);
    if (s)
        s->last_seen_ms = rt_mono_ms();
    s_fetch_ctx_t ctx = {self, id, idlen, 0, 0};
    if (m->seq == 0) {
        s_send_error(self, id, idlen, RT_EPROTO, "FETCH from seq 0: seqs start at 1");
        return;
    }
    /* A FETCH for another run counts in that run's numbering, which may not be this one's
     * above the stored head: answered with no record, and this run's id. */
    bool other_run = m->run_id && m->run_id != self->run_id;
    if (!(s && !s->stored.enabled) && !other_run) {
        size_t count = m->count < MAX_FETCH_RECORDS ? m->count : MAX_FETCH_RECORDS;
        int rc =
            count ? rt_outbox_read(self->outbox, m->seq, count, MAX_FETCH_BYTES, s_fetch_one, &ctx)
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
    rt_msg_t f = {.type = RT_MSG_FETCHED,
                  .seq = m->seq,
                  .last_seq = ctx.last,
                  .head_seq = s_stored(self),
                  .run_id = self->run_id};
    s_send_msg(self, id, idlen, &f);
    rt_peers_replied(self->peers, id, idlen, ctx.bytes);
}

static void s_on_ack(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(idlen < 127 ? idlen : 127), id);
    /* A subscriber commits records before they are stored: what it acknowledges past the
     * stored head counts as the head until they are. */
    uint64_t acked = m->seq, stored = rt_outbox_position(self->outbox).head_seq;
    if (acked > (self->published > stored ? self->published : stored)) {
        /* Records of an earlier run this one never published: the subscriber sees the
         * new run and says HELLO. */
        rt_debug("ACK of seq %llu from %s: beyond what this run published",
                 (unsigned long long)acked, name);
        return;
    }
    if (acked > stored)
        acked = stored;
    /* Only HELLO registers: a forgotten subscriber stays forgotten until it says HELLO. */
    rt_stream_sub_t *s = rt_stream_sub(self, name, false);
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
    if (s->stored.acked_seq != acked || s->stored.state != m->state)
        s->dirty = true;
    s->stored.acked_seq = acked;
    s->stored.state = (int32_t)m->state;
    /* Repair a lost PAUSE or RESUME notice. */
    bool says_paused = m->state == RT_SUB_PAUSED;
    if (says_paused == s->stored.enabled) {
        rt_msg_t n = {.type = s->stored.enabled ? RT_MSG_RESUME : RT_MSG_PAUSE, .name = name};
        s_send_msg(self, id, idlen, &n);
    }
}

/* Who sent a message: with CURVE, the name bound to the key that zauth accepted (NULL
 * when the key is no longer allowed); without, the routing id, which proves nothing. */
static const char *s_caller(rt_stream_t *self, const char *id, size_t idlen, const char *key,
                            char *buf, size_t size)
{
    if (self->auth)
        return rt_auth_name(self->auth, key);
    snprintf(buf, size, "%.*s", (int)(idlen < size - 1 ? idlen : size - 1), id);
    return buf;
}

/* With CURVE, HELLO, FETCH and ACK for the subscriber named by the routing id come only
 * from the key bound to that name; true when the message may be handled. */
static bool s_is_self(rt_stream_t *self, const char *id, size_t idlen, const char *caller,
                      const rt_msg_t *m, const char *peer)
{
    if (!self->auth || (caller && strlen(caller) == idlen && memcmp(caller, id, idlen) == 0))
        return true;
    char text[256];
    snprintf(text, sizeof text, "%s for subscriber %.*s refused: it comes from the key of %s",
             rt_msg_type_name(m->type), (int)(idlen < 64 ? idlen : 64), id,
             caller ? caller : "no allowed certificate");
    s_bad_frame(self, peer, text);
    s_send_error(self, id, idlen, RT_EINVAL, text);
    return false;
}

/* SYNC, SYNC_KEEP, SYNC_END and COPY name their subscriber and come from its routing ids
 * NAME/sync and NAME/copy<k>: the name must be usable, the routing id must start with
 * "NAME/" and, with CURVE, the message must come from NAME's key. True when it may be
 * handled. */
static bool s_is_copier(rt_stream_t *self, const char *id, size_t idlen, const char *caller,
                        const rt_msg_t *m, const char *peer)
{
    const char *type = rt_msg_type_name(m->type);
    size_t n = strlen(m->name);
    char text[256];
    if (!rt_name_ok(m->name))
        snprintf(text, sizeof text,
                 "%s: subscriber names are 1 to 63 of A-Z a-z 0-9 _ . -, not starting with . "
                 "or -",
                 type);
    else if (idlen <= n || memcmp(id, m->name, n) != 0 || id[n] != '/')
        snprintf(text, sizeof text, "%s for subscriber %s must come from a routing id %s/...", type,
                 m->name, m->name);
    else if (self->auth && !(caller && strcmp(caller, m->name) == 0))
        snprintf(text, sizeof text, "%s for subscriber %s refused: it comes from the key of %s",
                 type, m->name, caller ? caller : "no allowed certificate");
    else
        return true;
    s_bad_frame(self, peer, text);
    s_send_error(self, id, idlen, RT_EINVAL, text);
    return false;
}

/* SYNC with RT_SYNC_TABLES: a resync of chosen tables by a subscriber that streams
 * meanwhile. Its progress stays; the records after the head are kept (keep_from) until its
 * next HELLO, since it applies them to those tables once they are copied; SYNC_READY's
 * seq is that head. */
static void s_on_sync_tables(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m,
                             rt_stream_sub_t *s, uint64_t head)
{
    if (!s || (m->flags & RT_SYNC_RESET)) {
        s_send_error(self, id, idlen, RT_EINVAL,
                     s ? "SYNC: a resync of chosen tables cannot also be a reset"
                       : "SYNC of chosen tables from a subscriber this publisher does not know");
        return;
    }
    /* A resync of chosen tables that replaces one under way keeps what the tables copied
     * by the earlier one still replay. */
    if (!s->stored.keep_from || s->stored.keep_from > head + 1)
        s->stored.keep_from = head + 1;
    s->stored.keep_copied = false;
    s->last_seen_ms = rt_mono_ms();
    /* Stored before SYNC_READY: a publisher restarted before the subscriber's next HELLO
     * must still keep those records. */
    if (rt_outbox_sub_put(self->outbox, &s->stored) < 0) {
        s->dirty = true;
        s_send_error(self, id, idlen, RT_EIO, "the outbox could not store the resync's position");
        return;
    }
    s->dirty = false;
    rt_info("subscriber %s starts a resync of chosen tables: records are kept from seq %llu",
            m->name, (unsigned long long)s->stored.keep_from);
    uint64_t sync_id;
    char err[256];
    int rc =
        rt_sync_start(self->sync, m->name, id, idlen, head, m->count, &sync_id, err, sizeof err);
    if (rc != RT_OK)
        s_send_error(self, id, idlen, rc, err);
    else if (self->capture)
        rt_capture_resend_sequences(self->capture); /* after head: the copy applies them */
}

/* SYNC{name, seq, count}: registers the subscriber if unknown, with acked_seq = the head
 * (every later record is kept, and each transaction committed after the copy's snapshot
 * comes after it), marks it copying and starts a copy session, which answers SYNC_READY
 * or ERROR. A known subscriber keeps its acked_seq, unless records after it were trimmed:
 * then it starts from the head as well. */
static void s_on_sync(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    if (!self->sync) {
        s_send_error(self, id, idlen, RT_EINVAL, "this publisher has no source to copy from");
        return;
    }
    if (m->flags & ~(uint64_t)RT_SYNC_FLAGS) {
        s_send_error(self, id, idlen, RT_EINVAL, "SYNC with unknown flags");
        return;
    }
    uint64_t head = rt_outbox_position(self->outbox).head_seq;
    rt_stream_sub_t *s = rt_stream_sub(self, m->name, false);
    if (m->flags & RT_SYNC_TABLES) {
        s_on_sync_tables(self, id, idlen, m, s, head);
        return;
    }
    if (!s) {
        if (!(s = rt_stream_sub(self, m->name, true)))
            return;
        s->stored.acked_seq = head;
    } else if (m->flags & RT_SYNC_RESET) {
        /* A resync: the replica is copied again, its old progress does not count. Until
         * it has emptied its tables nothing was lost: a crash before then leaves it as it
         * was, and the operator asks again. */
        rt_info("subscriber %s starts a resync: records are kept from seq %llu", m->name,
                (unsigned long long)(head + 1));
        s->stored.acked_seq = head;
        s->stored.resync = false;
    } else if (s->stored.acked_seq + 1 < rt_outbox_first_seq(self->outbox) ||
               s->stored.acked_seq > head) {
        rt_warn("subscriber %s acknowledged seq %llu, whose successors are gone: its copy "
                "starts from the head",
                m->name, (unsigned long long)s->stored.acked_seq);
        s->stored.acked_seq = head;
    }
    s->stored.state = RT_SUB_COPYING;
    s->stored.keep_from = 0; /* every table is copied: no replay of chosen tables is left */
    s->stored.keep_copied = false;
    s->last_seen_ms = rt_mono_ms();
    /* Stored before the snapshot is taken: the records after acked_seq must be kept
     * whatever happens to this process (a copy resumed later relies on them). */
    if (rt_outbox_sub_put(self->outbox, &s->stored) < 0) {
        s->dirty = true;
        s_send_error(self, id, idlen, RT_EIO,
                     "the outbox could not store the subscriber's registration");
        return;
    }
    s->dirty = false;
    rt_info("subscriber %s starts an initial copy at seq %llu", m->name,
            (unsigned long long)s->stored.acked_seq);
    uint64_t sync_id;
    char err[256];
    int rc = rt_sync_start(self->sync, m->name, id, idlen, s->stored.acked_seq, m->count, &sync_id,
                           err, sizeof err);
    if (rc != RT_OK)
        s_send_error(self, id, idlen, rc, err);
    else if (self->capture)
        rt_capture_resend_sequences(self->capture); /* after acked_seq: the copy applies them */
}

/* COPY, SCHEMA, SYNC_KEEP and SYNC_END: handed to the copy session, which answers COPY
 * and SCHEMA itself. */
static void s_on_copy_session(rt_stream_t *self, const char *id, size_t idlen, const rt_msg_t *m)
{
    char err[256];
    int rc = RT_ENOTFOUND;
    if (!self->sync)
        snprintf(err, sizeof err, "no copy session %llu: this publisher has no source",
                 (unsigned long long)m->sync_id);
    else if (m->type == RT_MSG_COPY)
        rc = rt_sync_copy(self->sync, id, idlen, m, err, sizeof err);
    else if (m->type == RT_MSG_SCHEMA)
        rc = rt_sync_schema(self->sync, id, idlen, m, err, sizeof err);
    else if (m->type == RT_MSG_SYNC_KEEP)
        rc = rt_sync_keep(self->sync, m->name, m->sync_id, err, sizeof err);
    else
        rc = rt_sync_end(self->sync, m->name, m->sync_id, err, sizeof err);
    if (rc != RT_OK) {
        s_send_error(self, id, idlen, rc, err);
        return;
    }
    rt_stream_sub_t *s = rt_stream_sub(self, m->name, false);
    if (!s)
        return;
    s->last_seen_ms = rt_mono_ms();
    if (m->type == RT_MSG_SYNC_KEEP)
        s->copy = m->progress;
    else if (m->type == RT_MSG_SYNC_END) {
        memset(&s->copy, 0, sizeof s->copy);
        s->stored.keep_copied = s->stored.keep_from != 0;
        s->dirty = true;
        if (s->stored.keep_copied && rt_outbox_sub_put(self->outbox, &s->stored) == 0)
            s->dirty = false;
    }
}

static void s_dispatch(rt_stream_t *self, const char *id, size_t idlen, const char *key,
                       const void *body, size_t len)
{
    char peer[140], idname[128];
    const char *caller = s_caller(self, id, idlen, key, idname, sizeof idname);
    snprintf(peer, sizeof peer, "peer %.*s (%s)", (int)(idlen < 64 ? idlen : 64), id,
             caller ? caller : "unknown key");
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
            s_send_error(self, id, idlen, RT_EINVAL, "HELLO name must equal the DEALER routing id");
            break;
        }
        if (!rt_name_ok(m.name)) {
            s_bad_frame(self, peer, "HELLO name is not usable");
            s_send_error(self, id, idlen, RT_EINVAL,
                         "subscriber names are 1 to 63 of A-Z a-z 0-9 _ . -, not starting "
                         "with . or -");
            break;
        }
        if (s_is_self(self, id, idlen, caller, &m, peer))
            s_on_hello(self, id, idlen, &m);
        break;
    case RT_MSG_FETCH:
        if (s_is_self(self, id, idlen, caller, &m, peer))
            s_on_fetch(self, id, idlen, &m);
        break;
    case RT_MSG_ACK:
        if (s_is_self(self, id, idlen, caller, &m, peer))
            s_on_ack(self, id, idlen, &m);
        break;
    case RT_MSG_SYNC:
        if (s_is_copier(self, id, idlen, caller, &m, peer))
            s_on_sync(self, id, idlen, &m);
        break;
    case RT_MSG_SYNC_KEEP:
    case RT_MSG_SYNC_END:
    case RT_MSG_COPY:
    case RT_MSG_SCHEMA:
        if (s_is_copier(self, id, idlen, caller, &m, peer))
            s_on_copy_session(self, id, idlen, &m);
        break;
    default: {
        void *reply;
        size_t rlen;
        rt_admin_caller_t who = {.name = caller ? caller : "an unknown key",
                                 .admin =
                                     !self->auth || (caller && rt_auth_is_admin(self->auth, key))};
        rc = rt_admin_call_as(self, &m, &who, &reply, &rlen);
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

/* Receives one ROUTER message: its routing id and body, and how many frames it had.
 * False when nothing could be read. */
static bool s_recv(void *sock, zmq_msg_t *idf, zmq_msg_t *body, int *frames)
{
    if (zmq_msg_recv(idf, sock, ZMQ_DONTWAIT) < 0)
        return false;
    *frames = 1;
    if (zmq_msg_more(idf) && zmq_msg_recv(body, sock, ZMQ_DONTWAIT) >= 0)
        (*frames)++;
    if (*frames == 2 && zmq_msg_more(body)) {
        zmq_msg_t rest;
        zmq_msg_init(&rest);
        while (zmq_msg_recv(&rest, sock, ZMQ_DONTWAIT) >= 0) {
            (*frames)++;
            if (!zmq_msg_more(&rest))
                break;
        }
        zmq_msg_close(&rest);
    }
    return true;
}

int rt_stream_handle(rt_stream_t *self)
{
    void *sock = zsock_resolve(self->router);
    for (int i = 0; i < MAX_MESSAGES_PER_CALL; i++) {
        if (!(zsock_events(self->router) & ZMQ_POLLIN))
            break;
        zmq_msg_t idf, body;
        zmq_msg_init(&idf);
        zmq_msg_init(&body);
        int frames = 0;
        if (!s_recv(sock, &idf, &body, &frames)) {
            zmq_msg_close(&idf);
            zmq_msg_close(&body);
            break;
        }
        const char *id = zmq_msg_data(&idf);
        size_t idlen = zmq_msg_size(&idf);
        if (frames != 2) {
            s_bad_frame(self, NULL, "expected 2 frames [routing id][message]");
        } else if (idlen == 0) {
            s_bad_frame(self, NULL, "empty routing id");
        } else if (rt_peers_heard(self->peers, id, idlen, zmq_msg_get(&body, ZMQ_SRCFD))) {
            /* With CURVE: the client's public key, as zauth accepted it. */
            const char *key = self->auth ? zmq_msg_gets(&body, "User-Id") : NULL;
            s_dispatch(self, id, idlen, key, zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&idf);
        zmq_msg_close(&body);
    }
    return RT_OK;
}

/* HUGZ{the newest stored record, this run}. */
static void s_send_hugz(rt_stream_t *self, uint64_t stored, int64_t now)
{
    rt_msg_t h = {.type = RT_MSG_HUGZ, .head_seq = stored, .run_id = self->run_id};
    void *frame;
    size_t len;
    if (rt_msg_encode(&h, &frame, &len) == 0) {
        zmq_send(zsock_resolve(self->pub), frame, len, ZMQ_DONTWAIT);
        free(frame);
    }
    self->hugz_head = stored;
    self->last_pub_ms = now;
}

void rt_stream_publish_live(rt_stream_t *self, uint64_t seq, const void *data, size_t len)
{
    /* LIVE{run, stored head} + REC, one message: PUB never blocks; past the high-water
     * mark it drops the whole message and subscribers FETCH. The header is encoded again
     * only when the stored head moved (once per outbox commit, not per record). */
    uint64_t head = s_stored(self);
    if (!self->live_frame || self->live_head != head) {
        rt_msg_t live = {.type = RT_MSG_LIVE, .run_id = self->run_id, .head_seq = head};
        free(self->live_frame);
        self->live_frame = NULL;
        if (rt_msg_encode(&live, &self->live_frame, &self->live_len) == 0)
            self->live_head = head;
        else
            self->live_frame = NULL;
    }
    if (self->live_frame) {
        void *pub = zsock_resolve(self->pub);
        if (zmq_send(pub, self->live_frame, self->live_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
            zmq_send(pub, data, len, ZMQ_DONTWAIT);
    }
    self->published = seq;
    self->last_pub_ms = rt_mono_ms();
}

void rt_stream_publish_block(rt_stream_t *self, const rt_msg_t *m)
{
    rt_msg_t b = *m;
    b.run_id = self->run_id;
    void *frame;
    size_t len;
    if (rt_msg_encode(&b, &frame, &len) != RT_OK)
        return; /* subscribers apply the transaction after its commit */
    zmq_send(zsock_resolve(self->pub), frame, len, ZMQ_DONTWAIT);
    free(frame);
}

/* HUGZ{the newest stored record} as soon as an outbox commit moved it (subscribers
 * commit what they applied of it: protocol.md, "Live records and durability"), and
 * when nothing was published for HUGZ_INTERVAL_MS. */
static void s_publish(rt_stream_t *self, int64_t now)
{
    uint64_t stored = s_stored(self);
    if (stored != self->hugz_head || now - self->last_pub_ms >= HUGZ_INTERVAL_MS)
        s_send_hugz(self, stored, now);
}

static int s_persist(rt_stream_t *self)
{
    for (rt_stream_sub_t *s = zhashx_first(self->subs); s; s = zhashx_next(self->subs)) {
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
    for (rt_stream_sub_t *s = zhashx_first(self->subs); s; s = zhashx_next(self->subs)) {
        if (!s->stored.enabled)
            continue;
        enabled++;
        if (s->stored.acked_seq < upto)
            upto = s->stored.acked_seq;
        if (s->stored.keep_from && s->stored.keep_from - 1 < upto)
            upto = s->stored.keep_from - 1;
    }
    if (!enabled)
        return RT_OK; /* nobody registered yet: keep everything */
    uint64_t old_enough = self->retention_ms <= 0 ? UINT64_MAX : 0;
    while (self->retention_ms > 0 && self->nsamples > 0) {
        rt_stream_sample_t *s = &self->samples[self->sample_start];
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
        const rt_stream_sample_t *last =
            &self->samples[(self->sample_start + self->nsamples - 1) % SAMPLES_MAX];
        if (last->seq >= head || now - last->ms < 1000)
            return;
    }
    if (self->nsamples == SAMPLES_MAX) {
        self->sample_start = (self->sample_start + 1) % SAMPLES_MAX;
        self->nsamples--;
    }
    self->samples[(self->sample_start + self->nsamples) % SAMPLES_MAX] =
        (rt_stream_sample_t){head, now};
    self->nsamples++;
}

int rt_stream_tick(rt_stream_t *self)
{
    int64_t now = rt_mono_ms();
    s_sample(self, now);
    s_publish(self, now);
    int rc;
    if (now - self->last_persist_ms >= PERSIST_INTERVAL_MS) {
        self->last_persist_ms = now;
        if ((rc = s_persist(self)) < 0)
            return rc;
    }
    if (now - self->last_trim_ms >= TRIM_INTERVAL_MS) {
        self->last_trim_ms = now;
        rt_peers_tick(self->peers);
        if ((rc = s_trim(self, now)) < 0)
            return rc;
    }
    return RT_OK;
}

static int s_load_sub(void *arg, const rt_outbox_sub_t *sub)
{
    rt_stream_t *self = arg;
    rt_stream_sub_t *s = rt_stream_sub(self, sub->name, true);
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

void rt_stream_new_run(rt_stream_t *self)
{
    self->run_id = s_new_run_id();
    free(self->live_frame);
    self->live_frame = NULL;
    self->published = s_stored(self);
    s_send_hugz(self, self->published, rt_mono_ms());
}

void *rt_stream_router(rt_stream_t *self)
{
    return zsock_resolve(self->router);
}

void rt_stream_set_upstream(rt_stream_t *self, rt_stream_upstream_fn fn, void *arg)
{
    self->upstream = fn;
    self->upstream_arg = arg;
}

void rt_stream_set_retention(rt_stream_t *self, int64_t seconds)
{
    self->retention_ms = seconds * 1000;
}

uint64_t rt_stream_bad_frames(const rt_stream_t *self)
{
    return self->bad_frames;
}

uint64_t rt_stream_dropped_peers(const rt_stream_t *self)
{
    return rt_peers_dropped(self->peers);
}

rt_stream_t *rt_stream_new(const rt_stream_opts_t *opts, rt_outbox_t *outbox, rt_capture_t *capture)
{
    rt_stream_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->source = strdup(opts->source);
    self->slot = strdup(opts->slot ? opts->slot : "");
    self->pub_endpoint = strdup(opts->pub);
    self->retention_ms = opts->retention_s * 1000;
    self->run_id = s_new_run_id();
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
    self->auth = opts->auth;
    self->security = opts->security;
    self->sync = opts->sync;
    self->slot_stats = opts->slot_stats;
    self->outbox_limit = opts->outbox_limit;
    rt_sock_opts_t ro = {.type = ZMQ_ROUTER,
                         .endpoint = opts->listen,
                         .bind = true,
                         .what = "ROUTER (--listen)",
                         .sndhwm = ROUTER_HWM,
                         .rcvhwm = ROUTER_HWM,
                         .cert = opts->cert};
    if (!(self->router = rt_sock_new(&ro)))
        goto fail;
    char *bound = zsock_last_endpoint(self->router);
    self->peers = bound ? rt_peers_new(bound, MAX_FETCH_BYTES, ROUTER_HWM) : NULL;
    zstr_free(&bound);
    if (!self->peers)
        goto fail;
    rt_sock_opts_t po = {.type = ZMQ_PUB,
                         .endpoint = opts->pub,
                         .bind = true,
                         .what = "PUB (--pub)",
                         .sndhwm = opts->pub_hwm > 0 ? (int)opts->pub_hwm : RT_LIVE_HWM,
                         .cert = opts->cert};
    if (!(self->pub = rt_sock_new(&po)))
        goto fail;
    /* Records stored before this start are served by FETCH, not published. */
    int64_t now = rt_mono_ms();
    self->published = s_stored(self);
    self->hugz_head = self->published;
    self->samples[0] = (rt_stream_sample_t){self->published, now};
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
    rt_peers_destroy(&self->peers);
    zhashx_destroy(&self->subs);
    free(self->samples);
    free(self->live_frame);
    rt_record_decoder_destroy(&self->dec);
    free(self->source);
    free(self->slot);
    free(self->pub_endpoint);
    free(self);
    *self_p = NULL;
}
