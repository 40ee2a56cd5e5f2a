/* publisher/batch.c - the records the capture cut and the outbox has not stored yet, and
 * their commits: a batch fills while the one before it (flight) is with the committer
 * thread (committer.c); when that commit ends, the source is told the end LSN it made
 * durable, and the filling batch goes next (a group commit). A full outbox holds flight
 * and pauses reading from the source until it has room (capture_int.h, the capture's
 * batch fields). */
#include <stdlib.h>
#include <string.h>

#include "capture_int.h"
#include "committer.h"
#include "log.h"

/* A batch the full outbox refused is submitted again at most this often. */
#define FULL_RETRY_MS 100
/* Commits start at most this often while their batches are small (below an eighth of
 * batch_bytes): under a steady stream of small transactions a commit right after the one
 * before would cost its two fdatasyncs for a few records. Nothing live waits for it
 * (records are published when they are cut): only the source's confirmation, FETCH of
 * what is not stored yet, and rt_batch_flush_wait, which does not wait for the gap. */
#define COMMIT_GAP_MS 5

/* Appends a record cut with seq self->next_seq to the filling batch and publishes it. */
int rt_batch_add(rt_capture_t *self, const void *data, size_t len)
{
    rt_capture_batch_t *b = &self->batch;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + len)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return RT_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    if (rt_reserve((void **)&b->offs, &b->offs_cap, b->nrecs + 2, sizeof *b->offs) < 0)
        return RT_ENOMEM;
    b->offs[b->nrecs] = b->len;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->nrecs++;
    b->offs[b->nrecs] = b->len;
    if (self->opts.publish)
        self->opts.publish(self->opts.publish_arg, self->next_seq, data, len);
    return RT_OK;
}

static void s_batch_clear(rt_capture_batch_t *b)
{
    b->len = 0;
    b->nrecs = 0;
}

void rt_batch_free(rt_capture_batch_t *b)
{
    free(b->data);
    free(b->offs);
    free(b->recs);
    memset(b, 0, sizeof *b);
}

/* True while flight is with the committer or held (refused by a full outbox). */
bool rt_batch_flight_active(const rt_capture_t *self)
{
    return self->flight_held || rt_committer_busy(self->committer);
}

/* True when the filling batch reached batch_bytes while flight is active: reading
 * from the source waits for the commit. */
bool rt_batch_full(const rt_capture_t *self)
{
    return self->batch.len >= self->opts.batch_bytes && rt_batch_flight_active(self);
}

/* Hands flight (again) to the committer, with flight_pos. */
static int s_submit_flight(rt_capture_t *self)
{
    rt_capture_batch_t *f = &self->flight;
    if (rt_reserve((void **)&f->recs, &f->recs_cap, f->nrecs, sizeof *f->recs) < 0)
        return RT_ENOMEM;
    for (size_t i = 0; i < f->nrecs; i++) {
        f->recs[i].data = f->data + f->offs[i];
        f->recs[i].len = f->offs[i + 1] - f->offs[i];
    }
    int rc = rt_committer_submit(self->committer, f->recs, f->nrecs, &self->flight_pos);
    if (rc < 0)
        return rc; /* logged */
    self->flight_held = false;
    return RT_OK;
}

/* The filling batch, with the pending position, becomes flight and goes to the
 * committer; an empty batch starts filling. flight must be inactive. */
static int s_submit_batch(rt_capture_t *self)
{
    rt_capture_batch_t done = self->flight; /* empty: its buffers are reused */
    self->flight = self->batch;
    self->batch = done;
    s_batch_clear(&self->batch);
    self->flight_pos = self->pending;
    self->pending_dirty = false;
    self->commit_gap_ms = rt_mono_ms() + COMMIT_GAP_MS;
    return s_submit_flight(self);
}

/* True when the filling batch is small enough to wait for the gap between commits (not
 * during a streamed transaction's replay, which fills a batch per pump). */
static bool s_batch_small(const rt_capture_t *self)
{
    return self->batch.len < self->opts.batch_bytes / 8 && !self->replay.st;
}

/* Whether the filling batch (or the pending position) has anything to store; if so,
 * *from is the monotonic time from which an idle committer takes it: a small batch
 * waits for the gap after the previous commit, any other goes at once. */
static bool s_batch_due(const rt_capture_t *self, int64_t *from)
{
    if (self->batch.nrecs == 0 && !self->pending_dirty)
        return false;
    *from = s_batch_small(self) ? self->commit_gap_ms : 0;
    return true;
}

/* The commit of flight ended with result. RT_OK: flight is durable, its end LSN is
 * confirmed to the source. RT_EFULL: flight is held, reading from the source pauses.
 * Other codes are returned (fatal, logged by the outbox). */
static int s_on_result(rt_capture_t *self, int result)
{
    if (result == RT_EFULL) {
        if (!self->full_logged)
            rt_warn("outbox is full (%zu records waiting): reading from the source is paused "
                    "until subscribers acknowledge and the outbox is trimmed",
                    self->flight.nrecs + self->batch.nrecs);
        self->full_logged = true;
        self->stats.blocked = true;
        self->flight_held = true;
        self->full_retry_ms = rt_mono_ms() + FULL_RETRY_MS;
        return RT_OK;
    }
    if (result < 0)
        return result;
    if (self->full_logged)
        rt_info("outbox has room again: reading from the source resumes");
    self->full_logged = false;
    self->stats.blocked = false;
    self->stats.commits++;
    self->stats.stored_records += self->flight.nrecs;
    self->durable = self->flight_pos;
    s_batch_clear(&self->flight);
    if (self->durable.last_end_lsn > self->stats.confirmed_lsn) {
        self->stats.confirmed_lsn = self->durable.last_end_lsn;
        rt_capture_send_feedback(self, true);
    }
    return RT_OK;
}

/* Takes the outcome of the commit under way, if it ended (with wait, waits for it). */
static int s_collect(rt_capture_t *self, bool wait)
{
    int result;
    int rc = rt_committer_collect(self->committer, wait, &result);
    if (rc == RT_EAGAIN)
        return RT_OK; /* none in flight, or not ended yet */
    if (rc < 0)
        return rc;
    return s_on_result(self, result);
}

/* Moves the batches along without waiting: takes the outcome of a commit that ended,
 * then, if the committer is idle, hands it flight again when a full outbox refused it
 * (at most every FULL_RETRY_MS), else the filling batch with the pending position. Only
 * the outbox's failure is returned (fatal). */
int rt_batch_flush(rt_capture_t *self)
{
    int rc = s_collect(self, false);
    if (rc < 0 || rt_committer_busy(self->committer))
        return rc;
    if (self->flight_held)
        return rt_mono_ms() < self->full_retry_ms ? RT_OK : s_submit_flight(self);
    int64_t from;
    if (!s_batch_due(self, &from) || rt_mono_ms() < from)
        return RT_OK;
    return s_submit_batch(self);
}

int rt_batch_wait_ms(const rt_capture_t *self, int limit)
{
    int64_t from;
    if (self->flight_held || rt_committer_busy(self->committer) || !s_batch_due(self, &from))
        return limit;
    int64_t left = from - rt_mono_ms();
    return left <= 0 ? 0 : left < limit ? (int)left : limit;
}

/* Stores every record cut and the pending position, and waits until they are durable:
 * for those who read the outbox's stored position or chunks next. RT_OK; RT_EFULL when
 * the full outbox refused a batch (submitted once more first): it is held and blocked
 * is set; or the outbox's failure (fatal). */
int rt_batch_flush_wait(rt_capture_t *self)
{
    bool retried = false;
    for (;;) {
        int rc = s_collect(self, true);
        if (rc < 0)
            return rc;
        if (self->flight_held) {
            if (retried)
                return RT_EFULL;
            retried = true;
            rc = s_submit_flight(self);
        } else if (self->batch.nrecs > 0 || self->pending_dirty) {
            rc = s_submit_batch(self);
        } else {
            return RT_OK;
        }
        if (rc < 0)
            return rc;
    }
}
