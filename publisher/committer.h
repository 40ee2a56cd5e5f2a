/* publisher/committer.h - the outbox commit on a thread of its own, one put in flight.
 *
 * An LMDB commit is two fdatasyncs: run on the capture's thread it would stall reading
 * the source and publishing. The committer carries rt_outbox_put_write out on its thread
 * (an actor: it shares nothing but the put it is handed, and hands it back with the
 * result) while the caller goes on building the next batch; the caller's thread, which
 * owns the outbox, begins and ends each put (outbox.h, "Threads"), so every cached field
 * of the outbox and every map growth stays on that thread.
 *
 * Test hook: when the environment variable RT_TEST_COMMIT_DELAY_MS holds a number of
 * milliseconds (1..60000), the thread sleeps that long before each put, outside any
 * transaction, widening the window between a record's publication and its durability
 * for fault tests (schemas/outbox.md, "Commits"). */
#ifndef RT_COMMITTER_H
#define RT_COMMITTER_H

#include "outbox.h"
#include "rt.h"

typedef struct rt_committer_t rt_committer_t;

/* Starts the thread. outbox is borrowed: it must outlive the committer, and be used
 * from the calling thread only. NULL on failure, logged. */
rt_committer_t *rt_committer_new(rt_outbox_t *outbox);
/* Waits for a put in flight and ends it (a failure is logged), stops the thread and
 * clears *self_p. Safe on NULL. */
void rt_committer_destroy(rt_committer_t **self_p);

/* Hands a put of n records and pos (as rt_outbox_put) to the thread. recs and the bytes
 * they point to are borrowed until rt_committer_collect returns its outcome. RT_OK; or,
 * nothing handed over, RT_EINVAL (logged) when a put is in flight already or the outbox
 * refuses it (rt_outbox_put_begin), RT_EIO (logged) when the thread cannot be reached. */
int rt_committer_submit(rt_committer_t *self, const rt_outbox_rec_t *recs, size_t n,
                        const rt_outbox_pos_t *pos) RT_WUR;

/* True from a submit until its outcome is collected. */
bool rt_committer_busy(const rt_committer_t *self);

/* The socket to poll (zmq_pollitem_t.socket) for an outcome: readable when one waits. */
void *rt_committer_socket(rt_committer_t *self);

/* Takes the outcome of the put in flight, without waiting unless wait is set. On a full
 * map it grows the map and hands the same put over again, unseen by the caller. RT_OK
 * when the put ended: *result is RT_OK (records and position durable: the outbox's
 * position and next seq moved), RT_EFULL (the outbox's size limit: nothing written,
 * submit again later) or another RT_E* code of rt_outbox_put (a storage failure,
 * logged). RT_EAGAIN when no put is in flight, or (without wait) it has not ended yet.
 * RT_EIO (logged) when the thread cannot be reached. */
int rt_committer_collect(rt_committer_t *self, bool wait, int *result) RT_WUR;

#endif
