/* subscriber/streamed.h - a source transaction applied while it still runs on the source:
 * its blocks (STREAM) applied on a side session as they come, its records, once it
 * committed, taken in its place (schemas/protocol.md, "Streamed transactions"). */
#ifndef RT_STREAMED_H
#define RT_STREAMED_H

#include <signal.h>

#include "apply.h"
#include "rt.h"
#include "wire.h"

typedef struct rt_streamed_t rt_streamed_t;

/* Creates the state for the replica at dsn (the side session connects when the first
 * block comes). NULL if out of memory. */
rt_streamed_t *rt_streamed_new(const char *dsn, volatile sig_atomic_t *stop);

/* Rolls back the side's transaction, closes its session, frees self; clears *self_p. */
void rt_streamed_destroy(rt_streamed_t **self_p);

/* Connects the side session for source, when it is not: at the link's start, so that a
 * replica without room for its origin says so at once (logged; tried again at the next
 * streamed transaction). */
void rt_streamed_connect(rt_streamed_t *self, const char *source);

/* Takes a STREAM, STREAM_ABORT or STREAM_COMMIT of the publisher's run that main follows
 * (takes over m's data). source: the source's name (the side's origins). */
void rt_streamed_on_msg(rt_streamed_t *self, rt_apply_t *main, const char *source, rt_msg_t *m);

/* True when a block is due (main applied what came before it) but main has a transaction
 * open: the caller commits main's group, then calls rt_streamed_drain. */
bool rt_streamed_wants_commit(const rt_streamed_t *self, const rt_apply_t *main);

/* Applies the blocks that are due while main has no transaction open, and lets main wait
 * for locks again once no side transaction is open. */
void rt_streamed_drain(rt_streamed_t *self, rt_apply_t *main);

/* True when seq is the first record of the transaction the side applied, all of whose
 * blocks it has: main commits its group before it. */
bool rt_streamed_first(const rt_streamed_t *self, uint64_t seq);

/* While the records of a transaction the side applied are taken: the seq of the next one
 * (main's own next seq does not move until they are committed); else 0. */
uint64_t rt_streamed_next(const rt_streamed_t *self);

/* What rt_streamed_take did with a record. */
typedef enum {
    RT_STREAMED_APPLY = 0,    /* not the side's: main applies it (the side's transaction was
                               * rolled back first when rec is of its source transaction) */
    RT_STREAMED_TAKEN = 1,    /* a record of the side's transaction: nothing to apply */
    RT_STREAMED_COMMITTED = 2 /* its LAST: the side committed it in main's place */
} rt_streamed_took_t;

/* rec is the next record (main's next seq, or rt_streamed_next): taken when it is one of
 * the transaction the side applied, which commits at its LAST (main must have no
 * transaction open when the first is taken). mark: rec came live and was not stored yet
 * (the commit marks rt.progress). Returns an rt_streamed_took_t, or a negative RT_E*
 * code: the side's transaction was rolled back, and main applies the records again from
 * its next seq. */
int rt_streamed_take(rt_streamed_t *self, rt_apply_t *main, const rt_record_t *rec, bool mark);

/* Rolls back the side's transaction, if any, and forgets the blocks and what the SUB
 * delivered (the link to the publisher was lost, its run changed, main failed or stops).
 * why is logged. */
void rt_streamed_reset(rt_streamed_t *self, const char *why);

/* The SUB delivered the live record at seq. A record main takes past the newest one
 * delivered (fetched from the outbox ahead of the live stream) gives up a transaction
 * whose blocks are still coming; one whose blocks all came goes on. */
void rt_streamed_live(rt_streamed_t *self, uint64_t seq);

/* Source transactions committed by the side since start. */
uint64_t rt_streamed_committed(const rt_streamed_t *self);

#endif
