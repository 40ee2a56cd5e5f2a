/* publisher/spool.c - transactions streamed before their commit: stream start, stop,
 * abort and commit, and the spool files that hold them until then.
 *
 * The stream is pgoutput protocol 2 with streaming on: a transaction larger than the
 * source's logical_decoding_work_mem arrives in blocks while it is still running
 * (S ... E), interleaved with other transactions, and ends with a stream commit (c) or
 * abort (A). Without it the walsender spills such a transaction to disk and decodes
 * and sends all of it only after its commit, which is most of the time a large
 * transaction takes to replicate. Each streamed transaction's messages are spooled,
 * as they arrive, to an unlinked file beside the outbox (no fsync: after a restart
 * the source streams a transaction that was not committed from its beginning again);
 * an aborted subtransaction is remembered and its changes are left out. At the
 * stream commit the spool is read back through the same path as a transaction sent
 * after its commit, a batch per pump, so it is stored in commit order, chunk by chunk,
 * and nothing is read from the source until it is done. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture_int.h"
#include "log.h"

/* Spool read back per pump at most: chunks reach subscribers as they are cut, and the
 * batch buffer stays small. */
#define REPLAY_BATCH_BYTES (1u << 20)

/* A transaction streamed before its commit: its messages spooled in arrival order,
 * each as "uint32 len | uint32 subxid | the protocol 1 form of the message". */
struct rt_spool_txn_t {
    uint32_t xid;
    FILE *spool;       /* unlinked file in spool_dir */
    uint64_t changes;  /* I, U, D, T spooled */
    uint64_t bytes;    /* bytes spooled */
    uint32_t *aborted; /* subtransactions aborted: their changes are left out */
    size_t naborted, aborted_cap;
    char origin[128]; /* from the O after its first S, "" if none */
    bool filtered;    /* applied by an rt subscriber here: nothing is spooled */
    uint64_t blocks;  /* blocks published (STREAM) */
    bool unfit;       /* no more blocks: applied after its commit only */
};

static rt_spool_txn_t *s_stream_find(rt_capture_t *self, uint32_t xid)
{
    for (size_t i = 0; i < self->nstreams; i++)
        if (self->streams[i]->xid == xid)
            return self->streams[i];
    return NULL;
}

static void s_stream_drop(rt_capture_t *self, rt_spool_txn_t *st)
{
    for (size_t i = 0; i < self->nstreams; i++) {
        if (self->streams[i] == st) {
            self->streams[i] = self->streams[--self->nstreams];
            break;
        }
    }
    if (self->cur == st)
        self->cur = NULL;
    if (self->replay.st == st)
        self->replay.st = NULL;
    if (st->spool)
        fclose(st->spool);
    free(st->aborted);
    free(st);
}

/* Tells subscribers that st (or its subtransaction subxid) is rolled back: what they
 * applied of its blocks is taken back. Nothing when no block of it went out. */
static void s_publish_abort(rt_capture_t *self, const rt_spool_txn_t *st, uint32_t subxid)
{
    if (!self->opts.stream || st->blocks == 0)
        return;
    rt_msg_t a = {.type = RT_MSG_STREAM_ABORT, .xid = st->xid, .subxid = subxid};
    self->opts.stream(self->opts.publish_arg, &a);
}

void rt_spool_drop_all(rt_capture_t *self)
{
    rt_capture_block_drop(self);
    while (self->nstreams > 0) {
        if (!self->streams[0]->unfit)
            s_publish_abort(self, self->streams[0], self->streams[0]->xid);
        s_stream_drop(self, self->streams[0]);
    }
}

/* A new spool: a file created in spool_dir and unlinked at once, so nothing is left
 * behind whatever way the publisher stops. */
static FILE *s_spool_open(rt_capture_t *self)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/stream-XXXXXX", self->opts.spool_dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        rt_error("spool directory path too long: %s", self->opts.spool_dir);
        return NULL;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        rt_error("cannot create a spool file in %s: %s", self->opts.spool_dir, strerror(errno));
        return NULL;
    }
    unlink(path);
    FILE *f = fdopen(fd, "w+b");
    if (!f) {
        rt_error("cannot open spool file: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    return f;
}

int rt_spool_on_start(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    if (self->in_txn) {
        rt_error("source: Stream Start inside an open transaction (xid %u)", self->xid);
        return RT_EPROTO;
    }
    uint32_t xid = m->u.stream_start.xid;
    rt_spool_txn_t *st = s_stream_find(self, xid);
    if (st && m->u.stream_start.first) {
        rt_warn("source: transaction xid %u streamed from its first block again; "
                "dropping what was spooled",
                xid);
        if (!st->unfit)
            s_publish_abort(self, st, xid);
        s_stream_drop(self, st);
        st = NULL;
    }
    if (!st) {
        if (!m->u.stream_start.first) {
            rt_error("source: stream block of transaction xid %u without its first block", xid);
            return RT_EPROTO;
        }
        if (rt_reserve((void **)&self->streams, &self->streams_cap, self->nstreams + 1,
                       sizeof *self->streams) < 0 ||
            !(st = calloc(1, sizeof *st)))
            return RT_ENOMEM;
        st->xid = xid;
        if (!(st->spool = s_spool_open(self))) {
            free(st);
            return RT_EIO;
        }
        self->streams[self->nstreams++] = st;
        rt_debug("source: transaction xid %u arrives in blocks before its commit", xid);
    }
    self->cur = st;
    return RT_OK;
}

int rt_spool_on_stop(rt_capture_t *self)
{
    rt_spool_txn_t *st = self->cur;
    self->cur = NULL;
    return st && !st->unfit ? rt_capture_block_cut(self, &st->blocks) : RT_OK;
}

/* Publishes change m of st in a block, until st turns out unfit for blocks. */
static int s_block_add(rt_capture_t *self, rt_spool_txn_t *st, const rt_pgo_msg_t *m)
{
    if (st->unfit)
        return RT_OK;
    int rc;
    if (m->type == 'R') {
        /* The descriptor as of this block (rt_capture_on_relation again at the replay). */
        rc = rt_capture_on_relation(self, m);
        return rc;
    }
    if (m->type == 'Y')
        return RT_OK;
    bool unfit;
    if ((rc = rt_capture_block_add(self, st->xid, m->xid, m, &st->blocks, &unfit)) < 0)
        return rc;
    if (unfit) {
        st->unfit = true;
        rt_debug("source: transaction xid %u is applied after its commit (a %s): no more blocks",
                 st->xid, m->type == 'T' ? "TRUNCATE" : "DDL change or a very large block");
        s_publish_abort(self, st, st->xid);
    }
    return RT_OK;
}

/* A message inside a block: O (after the first S) names the origin; R, Y, I, U, D, T
 * are spooled in their protocol 1 form (the type byte, then what follows the xid). */
int rt_spool_on_message(rt_capture_t *self, const rt_pgo_msg_t *m, const char *buf, size_t len)
{
    rt_spool_txn_t *st = self->cur;
    if (!st) {
        rt_error("source: message '%c' in a stream block without its Stream Start", m->type);
        return RT_EPROTO;
    }
    if (m->type == 'M')
        return RT_OK; /* logical messages are not replicated */
    if (m->type == 'O') {
        snprintf(st->origin, sizeof st->origin, "%s", m->u.origin.name);
        st->filtered = strncmp(st->origin, RT_ORIGIN_PREFIX, strlen(RT_ORIGIN_PREFIX)) == 0;
        return RT_OK;
    }
    if (st->filtered)
        return RT_OK;
    uint32_t hdr[2] = {(uint32_t)(len - 4), m->xid};
    if (fwrite(hdr, sizeof hdr, 1, st->spool) != 1 || fwrite(buf, 1, 1, st->spool) != 1 ||
        fwrite(buf + 5, 1, len - 5, st->spool) != len - 5) {
        rt_error("cannot write the spool of transaction xid %u (%" PRIu64 " bytes so far): %s",
                 st->xid, st->bytes, strerror(errno));
        return RT_EIO;
    }
    st->bytes += sizeof hdr + len - 4;
    if (m->type != 'R' && m->type != 'Y')
        st->changes++;
    return s_block_add(self, st, m);
}

int rt_spool_on_abort(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    rt_spool_txn_t *st = s_stream_find(self, m->u.stream_abort.xid);
    if (!st)
        return RT_OK; /* nothing of it was streamed on this connection */
    if (m->u.stream_abort.subxid == st->xid) {
        rt_debug("source: streamed transaction xid %u aborted (%" PRIu64 " changes spooled)",
                 st->xid, st->changes);
        if (!st->unfit)
            s_publish_abort(self, st, st->xid);
        s_stream_drop(self, st);
        return RT_OK;
    }
    if (rt_reserve((void **)&st->aborted, &st->aborted_cap, st->naborted + 1, sizeof *st->aborted) <
        0)
        return RT_ENOMEM;
    st->aborted[st->naborted++] = m->u.stream_abort.subxid;
    if (!st->unfit)
        s_publish_abort(self, st, m->u.stream_abort.subxid);
    return RT_OK;
}

static bool s_stream_aborted(const rt_spool_txn_t *st, uint32_t subxid)
{
    for (size_t i = 0; i < st->naborted; i++)
        if (st->aborted[i] == subxid)
            return true;
    return false;
}

/* The stream commit: the transaction is read back from its spool by rt_spool_replay. */
int rt_spool_on_commit(rt_capture_t *self, const rt_pgo_msg_t *m)
{
    uint32_t xid = m->u.stream_commit.xid;
    rt_spool_txn_t *st = s_stream_find(self, xid);
    if (!st) {
        rt_error("source: Stream Commit of transaction xid %u, which was not streamed", xid);
        return RT_EPROTO;
    }
    if (fflush(st->spool) != 0 || fseek(st->spool, 0, SEEK_SET) != 0) {
        rt_error("cannot read back the spool of transaction xid %u: %s", xid, strerror(errno));
        return RT_EIO;
    }
    rt_debug("source: streamed transaction xid %u committed; storing its %" PRIu64 " changes", xid,
             st->changes);
    if (self->opts.stream && st->blocks > 0 && !st->unfit) {
        /* Its records start at the next seq (unless it was stored before: subscribers
         * check that the record there is this transaction's first). */
        rt_msg_t c = {.type = RT_MSG_STREAM_COMMIT,
                      .xid = xid,
                      .count = st->blocks,
                      .first_seq = self->next_seq};
        self->opts.stream(self->opts.publish_arg, &c);
    }
    self->replay.st = st;
    self->replay.commit_lsn = m->u.stream_commit.commit_lsn;
    self->replay.end_lsn = m->u.stream_commit.end_lsn;
    self->replay.commit_ts = m->u.stream_commit.commit_ts;
    self->stats.streamed_txns++;
    rt_pgo_msg_t b = {.type = 'B'};
    b.u.begin.xid = xid;
    b.u.begin.final_lsn = self->replay.commit_lsn;
    b.u.begin.commit_ts = self->replay.commit_ts;
    int rc = rt_capture_on_begin(self, &b);
    if (rc < 0)
        return rc;
    if (st->origin[0]) {
        rt_pgo_msg_t o = {.type = 'O'};
        o.u.origin.name = st->origin;
        if ((rc = rt_capture_on_origin(self, &o)) < 0)
            return rc;
    }
    return RT_OK;
}

size_t rt_spool_budget(const rt_capture_t *self)
{
    return self->opts.batch_bytes < REPLAY_BATCH_BYTES ? (size_t)self->opts.batch_bytes
                                                       : REPLAY_BATCH_BYTES;
}

/* Reads the spool of the committed streamed transaction back, up to one batch, then
 * ends the transaction with its commit. */
int rt_spool_replay(rt_capture_t *self)
{
    rt_spool_txn_t *st = self->replay.st;
    int rc;
    size_t budget = rt_spool_budget(self);
    while (!self->skip && self->batch.len < budget) {
        uint32_t hdr[2];
        size_t n = fread(hdr, 1, sizeof hdr, st->spool);
        if (n == 0 && feof(st->spool))
            break;
        if (n != sizeof hdr || hdr[0] == 0 || hdr[0] > (1u << 30)) {
            rt_error("the spool of transaction xid %u is damaged", st->xid);
            return RT_EIO;
        }
        if (hdr[0] > self->replay.cap) {
            size_t cap = self->replay.cap ? self->replay.cap : 4096;
            while (cap < hdr[0])
                cap *= 2;
            char *b = realloc(self->replay.buf, cap);
            if (!b)
                return RT_ENOMEM;
            self->replay.buf = b;
            self->replay.cap = cap;
        }
        if (fread(self->replay.buf, 1, hdr[0], st->spool) != hdr[0]) {
            rt_error("the spool of transaction xid %u is truncated", st->xid);
            return RT_EIO;
        }
        char type = self->replay.buf[0];
        if (type != 'R' && type != 'Y' && s_stream_aborted(st, hdr[1]))
            continue;
        rt_pgo_msg_t m;
        if ((rc = rt_pgoutput_decode(self->decoder, self->replay.buf, hdr[0], &m)) < 0) {
            rt_error("spooled message of transaction xid %u does not decode", st->xid);
            return RT_EIO;
        }
        if (m.type == 'R')
            rc = rt_capture_on_relation(self, &m);
        else if (m.type == 'Y')
            rc = RT_OK;
        else
            rc = rt_capture_on_change(self, &m);
        if (rc < 0)
            return rc == RT_EPROTO ? RT_EIO : rc;
    }
    if (!self->skip && !feof(st->spool))
        return RT_OK;
    rt_pgo_msg_t c = {.type = 'C'};
    c.u.commit.commit_lsn = self->replay.commit_lsn;
    c.u.commit.end_lsn = self->replay.end_lsn;
    c.u.commit.commit_ts = self->replay.commit_ts;
    rt_info("source: transaction xid %u, streamed before its commit, committed: %" PRIu64
            " changes, %" PRIu64 " bytes spooled",
            st->xid, st->changes, st->bytes);
    rc = rt_capture_on_commit(self, &c);
    s_stream_drop(self, st);
    return rc;
}
