/* publisher/resume.c - where a subscriber that committed records before they were stored
 * stands in this run's numbering (schemas/protocol.md, "Live records and durability").
 *
 * A subscriber commits a source transaction as soon as it applied its LAST record, stored
 * or not. A publisher that crashed before storing it numbers it again in its next run,
 * maybe under another seq; the subscriber's HELLO then names the seq it applied and that
 * record's commit LSN, and this file finds the same point in the records stored now. */
#include "stream.h"

#include "outbox.h"
#include "wire.h"

/* What one record says about its place in the source's commit order. */
typedef struct {
    rt_record_decoder_t *dec;
    rt_lsn_t commit_lsn;
    bool last;      /* ends a source transaction */
    bool sequences; /* a record of sequences (no source transaction) */
    bool bad;
} s_rec_t;

static int s_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_rec_t *r = arg;
    const rt_record_t *rec;
    (void)seq;
    if (rt_record_decode(r->dec, data, len, &rec) != RT_OK) {
        r->bad = true;
        return 1;
    }
    r->commit_lsn = rec->commit_lsn;
    r->last = (rec->flags & RT_REC_LAST) != 0;
    r->sequences = rt_record_is_sequences(rec);
    return 0;
}

/* Reads the record at seq. RT_OK, RT_ETRIMMED, RT_EPROTO (it does not decode), RT_EIO. */
static int s_read(rt_outbox_t *outbox, uint64_t seq, s_rec_t *r)
{
    r->bad = false;
    int rc = rt_outbox_read(outbox, seq, 1, 1, s_visit, r);
    if (rc < 0)
        return rc;
    return r->bad ? RT_EPROTO : RT_OK;
}

int rt_stream_resume_position(rt_outbox_t *outbox, uint64_t seq, rt_lsn_t lsn, uint64_t acked,
                              uint64_t *pos)
{
    rt_outbox_pos_t head = rt_outbox_position(outbox);
    uint64_t first = rt_outbox_first_seq(outbox);
    s_rec_t r = {.dec = rt_record_decoder_new()};
    if (!r.dec)
        return RT_ENOMEM;
    int rc;
    /* The end of the same transaction where the subscriber left it, or a record of
     * sequences after it: the numbering agrees there (a run that numbered records of
     * sequences otherwise may have one the subscriber never applied at or before seq; it
     * carries values at least as new, and a sequence it moves may lag on that replica
     * until the sequence moves again). */
    if (seq >= first && seq <= head.head_seq && (rc = s_read(outbox, seq, &r)) == RT_OK &&
        r.commit_lsn == lsn && r.last) {
        *pos = seq;
        rc = RT_OK;
        goto done;
    }
    /* Every transaction up to the subscriber's must be stored before its place is known. */
    if (head.head_seq < first || head.last_commit_lsn < lsn) {
        rc = RT_EAGAIN;
        goto done;
    }
    /* The last stored record with a commit LSN at or before lsn (commit LSNs do not
     * decrease with seqs): lo has one, hi + 1 has none. */
    uint64_t lo = first - 1, hi = head.head_seq;
    rc = RT_OK;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if ((rc = s_read(outbox, mid, &r)) != RT_OK)
            goto done;
        if (r.commit_lsn <= lsn)
            lo = mid;
        else
            hi = mid - 1;
    }
    /* Nothing kept is at or before it: it stands right before the oldest record if its
     * acknowledged seq says so (trimming stops there), else what it needs is gone. */
    if (lo < first && first > 1 && acked + 1 < first) {
        rc = RT_ETRIMMED;
        goto done;
    }
    /* Records of sequences after it are applied again (they only move sequences
     * forward): the subscriber's place is the end of its last transaction. */
    while (lo >= first) {
        if ((rc = s_read(outbox, lo, &r)) != RT_OK)
            goto done;
        if (!r.sequences) {
            if (!r.last)
                rc = RT_EPROTO; /* a transaction cut short below the head: not an outbox */
            break;
        }
        lo--;
    }
    if (rc != RT_OK)
        goto done;
    *pos = lo;
    rc = RT_OK;
done:
    rt_record_decoder_destroy(&r.dec);
    return rc;
}
