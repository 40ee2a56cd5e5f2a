/* subscriber/streamed.c - a source transaction applied while it still runs on the source
 * (streamed.h; schemas/protocol.md, "Streamed transactions").
 *
 *   IDLE --STREAM 1--> OPEN --STREAM_COMMIT{count = blocks taken}--> READY
 *   READY --its FIRST record at first_seq--> TAKING --its LAST record--> commit, IDLE
 *
 * Blocks and subtransaction aborts queue in arrival order; a block is applied once main
 * has committed every record the publisher had cut before it (its head) and has no
 * transaction open, so the side never waits for main's rows and applies each change
 * after what the source committed before it. A subtransaction's first block starts a
 * SAVEPOINT; its abort rolls back to it. Anything out of order (a block missed, another
 * run, a record of the transaction before the side is ready, a failure) rolls the side's
 * transaction back, and main applies the transaction from its records as always.
 *
 * Blocks come on the SUB, in order with the live records; main also takes records
 * fetched from the outbox, which may be past what the SUB delivered (its queue lags
 * behind the outbox). Once main took such a record, blocks still to come may belong to
 * transactions whose records main applied already, or hold rows main's next records
 * need: a transaction whose blocks are still coming is left to its records too. */
#include "streamed.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* After the side session could not connect, it is not tried again before this long. */
#define S_CONNECT_RETRY_MS 60000
/* Bytes of blocks queued while main catches up: past it the transaction is left to main. */
#define S_QUEUE_MAX_BYTES (16u * 1024 * 1024)

typedef enum { S_IDLE, S_OPEN, S_READY, S_TAKING } s_state_t;

/* A queued block (data set) or subtransaction abort (data NULL). */
typedef struct {
    uint64_t head;   /* block: the last seq cut before it */
    uint32_t subxid; /* its subtransaction */
    void *data;      /* block: the REC of its changes */
    size_t len;
} s_item_t;

struct rt_streamed_t {
    rt_apply_t *side;         /* the side session */
    rt_record_decoder_t *dec; /* decodes blocks */
    int state;                /* s_state_t */
    uint32_t xid;             /* the transaction (not IDLE) */
    uint32_t left;            /* a transaction given up: its blocks are ignored */
    uint64_t next_block;      /* OPEN: the block expected next */
    uint64_t first_seq;       /* READY, TAKING: the seq of its first record */
    uint64_t take_next;       /* TAKING: the seq expected next */
    bool mark;                /* TAKING: a record taken was not stored yet */
    uint32_t *saves;          /* subtransactions with a SAVEPOINT, oldest first */
    size_t nsaves, saves_cap;
    zlistx_t *queue;          /* s_item_t, in arrival order */
    size_t queued;            /* their bytes */
    uint64_t live_seq;        /* newest seq the SUB delivered since the last reset (a live
                               * record's, or the head a block came after) */
    uint64_t committed;       /* transactions the side committed */
    int64_t connect_after_ms; /* no connection attempt before this (monotonic ms) */
};

static void s_item_free(void **p)
{
    if (*p) {
        s_item_t *it = *p;
        free(it->data);
        free(it);
        *p = NULL;
    }
}

rt_streamed_t *rt_streamed_new(const char *dsn, volatile sig_atomic_t *stop)
{
    rt_streamed_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->side = rt_apply_new(dsn, stop);
    self->dec = rt_record_decoder_new();
    self->queue = zlistx_new();
    if (!self->side || !self->dec || !self->queue) {
        rt_streamed_destroy(&self);
        return NULL;
    }
    zlistx_set_destructor(self->queue, s_item_free);
    rt_apply_set_side(self->side);
    return self;
}

void rt_streamed_destroy(rt_streamed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_streamed_t *self = *self_p;
    rt_apply_destroy(&self->side);
    rt_record_decoder_destroy(&self->dec);
    zlistx_destroy(&self->queue);
    free(self->saves);
    free(self);
    *self_p = NULL;
}

/* Back to IDLE: the side's transaction rolled back, the queue emptied. */
static void s_clear(rt_streamed_t *self)
{
    rt_apply_rollback(self->side);
    zlistx_purge(self->queue);
    self->queued = 0;
    self->nsaves = 0;
    self->state = S_IDLE;
}

/* Gives the transaction up: main applies it from its records. */
static void s_leave(rt_streamed_t *self, const char *why)
{
    if (self->state == S_IDLE)
        return;
    if (!why[0])
        why = "the replica failed it";
    rt_info("streamed transaction xid %u: %s; it is applied from its records after its commit",
            self->xid, why);
    self->left = self->xid;
    s_clear(self);
}

void rt_streamed_reset(rt_streamed_t *self, const char *why)
{
    s_leave(self, why);
    self->live_seq = 0;
}

void rt_streamed_live(rt_streamed_t *self, uint64_t seq)
{
    if (seq > self->live_seq)
        self->live_seq = seq;
}

/* Whether main took (or takes) the record at seq before the SUB delivered it. */
static bool s_past_live(const rt_streamed_t *self, uint64_t seq)
{
    return seq > self->live_seq;
}

uint64_t rt_streamed_committed(const rt_streamed_t *self)
{
    return self->committed;
}

bool rt_streamed_first(const rt_streamed_t *self, uint64_t seq)
{
    return self->state == S_READY && seq == self->first_seq;
}

uint64_t rt_streamed_next(const rt_streamed_t *self)
{
    return self->state == S_TAKING ? self->take_next : 0;
}

static void s_on_block(rt_streamed_t *self, const rt_apply_t *main, rt_msg_t *m)
{
    uint32_t xid = (uint32_t)m->xid;
    rt_streamed_live(self, m->head_seq);
    bool late = s_past_live(self, rt_apply_next_seq(main) - 1);
    if (self->state == S_IDLE) {
        if (m->seq != 1 || xid == self->left)
            return; /* joined in the middle of it */
        if (late) {
            rt_debug("streamed transaction xid %u: its first block (after seq %" PRIu64
                     ") came after seq %" PRIu64 " was taken; it is applied from its records",
                     xid, m->head_seq, rt_apply_next_seq(main) - 1);
            self->left = xid;
            return;
        }
        self->state = S_OPEN;
        self->xid = xid;
        rt_apply_forget_error(self->side); /* the last one's failure was told */
        self->next_block = 1;
        self->nsaves = 0;
        self->mark = false;
        rt_debug("streamed transaction xid %u: applying its blocks as they come", xid);
    } else if (xid != self->xid) {
        return; /* one at a time: another one is applied from its records */
    } else if (m->seq == 1) {
        s_leave(self, "the publisher sends it again from its first block");
        self->left = 0;
        s_on_block(self, main, m);
        return;
    }
    if (self->state != S_OPEN || m->seq != self->next_block) {
        s_leave(self, "a block was missed");
        return;
    }
    if (late) {
        s_leave(self, "its blocks come after records cut after them (the live stream lags)");
        return;
    }
    if (self->queued + m->datalen > S_QUEUE_MAX_BYTES) {
        s_leave(self, "too many blocks wait for the records before them");
        return;
    }
    s_item_t *it = calloc(1, sizeof *it);
    if (!it) {
        s_leave(self, "out of memory");
        return;
    }
    it->head = m->head_seq;
    it->subxid = (uint32_t)m->subxid;
    it->data = m->data;
    it->len = m->datalen;
    m->data = NULL;
    m->datalen = 0;
    if (!zlistx_add_end(self->queue, it)) {
        void *p = it;
        s_item_free(&p);
        s_leave(self, "out of memory");
        return;
    }
    self->queued += it->len;
    self->next_block++;
}

/* Connects the side session; false (logged) when it cannot. */
static bool s_connect(rt_streamed_t *self, const char *source)
{
    uint64_t applied;
    int64_t now = rt_mono_ms();
    if (now < self->connect_after_ms)
        return false;
    if (rt_apply_connect(self->side, source, &applied) == RT_OK)
        return true;
    self->connect_after_ms = now + S_CONNECT_RETRY_MS;
    rt_warn("no second replica session for applying large transactions while they run (%s); "
            "they are applied after their commit (tried again in %d s)",
            rt_apply_last_error(self->side), S_CONNECT_RETRY_MS / 1000);
    return false;
}

void rt_streamed_connect(rt_streamed_t *self, const char *source)
{
    if (!rt_apply_connected(self->side))
        (void)s_connect(self, source);
}

void rt_streamed_on_msg(rt_streamed_t *self, rt_apply_t *main, const char *source, rt_msg_t *m)
{
    uint32_t xid = (uint32_t)m->xid;
    if (m->type == RT_MSG_STREAM) {
        if (!rt_apply_plain(main)) {
            s_leave(self, "records are not applied as they are now (a conflict policy, a "
                          "copy, a replay or a skip)");
            return;
        }
        if (!rt_apply_connected(self->side)) {
            if (m->seq != 1 || self->state != S_IDLE)
                return;
            if (!s_connect(self, source)) {
                self->left = xid;
                return;
            }
        }
        s_on_block(self, main, m);
    } else if (m->type == RT_MSG_STREAM_ABORT && self->state != S_IDLE && xid == self->xid) {
        if (m->subxid == m->xid) {
            rt_debug("streamed transaction xid %u rolled back on the source", xid);
            s_clear(self);
            return;
        }
        if (self->state != S_OPEN) {
            s_leave(self, "a subtransaction abort after its commit");
            return;
        }
        s_item_t *it = calloc(1, sizeof *it);
        if (!it || !zlistx_add_end(self->queue, it)) {
            free(it);
            s_leave(self, "out of memory");
            return;
        }
        it->subxid = (uint32_t)m->subxid;
    } else if (m->type == RT_MSG_STREAM_COMMIT && self->state == S_OPEN && xid == self->xid) {
        if (m->count != self->next_block - 1) {
            s_leave(self, "a block was missed");
            return;
        }
        if (rt_apply_next_seq(main) > m->first_seq) {
            s_leave(self, "its records were taken before its commit came (the live stream lags)");
            return;
        }
        self->state = S_READY;
        self->first_seq = m->first_seq;
    }
}

bool rt_streamed_wants_commit(const rt_streamed_t *self, const rt_apply_t *main)
{
    s_item_t *it = zlistx_first(self->queue);
    return it && rt_apply_in_txn(main) && rt_apply_next_seq(main) > it->head;
}

/* Applies one queued item. RT_OK or the failure (the caller leaves the transaction). */
static int s_apply_item(rt_streamed_t *self, s_item_t *it)
{
    if (!it->data) {
        for (size_t i = 0; i < self->nsaves; i++) {
            if (self->saves[i] == it->subxid) {
                self->nsaves = i + 1; /* the later SAVEPOINTs go with it */
                return rt_apply_side_savepoint(self->side, it->subxid, true);
            }
        }
        return RT_OK; /* nothing of it was applied */
    }
    const rt_record_t *rec;
    int rc = rt_record_decode(self->dec, it->data, it->len, &rec);
    if (rc != RT_OK)
        return rc;
    if (rec->xid != self->xid || rec->seq != rt_apply_next_seq(self->side))
        return RT_EPROTO;
    bool saved = it->subxid == self->xid;
    for (size_t i = 0; !saved && i < self->nsaves; i++)
        saved = self->saves[i] == it->subxid;
    if (!saved) {
        if (rt_reserve((void **)&self->saves, &self->saves_cap, self->nsaves + 1,
                       sizeof *self->saves) < 0)
            return RT_ENOMEM;
        if ((rc = rt_apply_side_savepoint(self->side, it->subxid, false)) != RT_OK)
            return rc;
        self->saves[self->nsaves++] = it->subxid;
    }
    return rt_apply_record(self->side, rec, it->len);
}

void rt_streamed_drain(rt_streamed_t *self, rt_apply_t *main)
{
    s_item_t *it;
    while ((self->state == S_OPEN || self->state == S_READY) && !rt_apply_in_txn(main) &&
           rt_apply_connected(main) && (it = zlistx_first(self->queue)) &&
           (!it->data || rt_apply_applied_seq(main) >= it->head)) {
        if (rt_apply_guard(main, true) != RT_OK) {
            s_leave(self, "the replica failed to set lock_timeout");
            return;
        }
        int rc = s_apply_item(self, it);
        self->queued -= it->len;
        zlistx_delete(self->queue, NULL);
        if (rc != RT_OK) {
            s_leave(self, rc == RT_ENOMEM   ? "out of memory"
                          : rc == RT_EPROTO ? "a block that does not decode"
                                            : rt_apply_last_error(self->side));
            return;
        }
    }
    if (self->state == S_IDLE && !rt_apply_in_txn(main))
        rt_apply_guard(main, false);
}

int rt_streamed_take(rt_streamed_t *self, rt_apply_t *main, const rt_record_t *rec, bool mark)
{
    bool first = (rec->flags & RT_REC_FIRST) != 0;
    if (self->state == S_OPEN && s_past_live(self, rec->seq))
        s_leave(self, "records come from the outbox ahead of the live stream");
    if (self->state == S_IDLE)
        return RT_STREAMED_APPLY;
    if (self->state == S_TAKING) {
        if (rec->seq != self->take_next || rec->xid != self->xid || first) {
            s_leave(self, "its records are not the ones expected");
            return RT_EPROTO;
        }
    } else if (self->state == S_READY && rec->seq == self->first_seq) {
        if (rec->xid != self->xid || !first || zlistx_size(self->queue) > 0 ||
            rt_apply_in_txn(main) || !rt_apply_plain(main)) {
            s_leave(self, "its first record is not the one expected");
            return RT_STREAMED_APPLY;
        }
        self->state = S_TAKING;
        self->mark = false;
    } else {
        if (rec->xid == self->xid)
            s_leave(self, "its records came before all its blocks were applied");
        else if (self->state == S_READY && rec->seq > self->first_seq)
            s_leave(self, "its records were taken before its commit came (the live stream lags)");
        return RT_STREAMED_APPLY;
    }
    self->mark |= mark;
    self->take_next = rec->seq + 1;
    if (!(rec->flags & RT_REC_LAST))
        return RT_STREAMED_TAKEN;
    int rc = rt_apply_side_commit(self->side, main, rec, self->mark);
    if (rc != RT_OK) {
        s_leave(self, rt_apply_last_error(self->side));
        return rc;
    }
    rt_info("streamed transaction xid %u committed (seq %" PRIu64 "..%" PRIu64
            "): applied from its blocks while it ran",
            self->xid, self->first_seq, rec->seq);
    self->committed++;
    self->state = S_IDLE;
    self->nsaves = 0;
    rt_apply_guard(main, false);
    return RT_STREAMED_COMMITTED;
}
