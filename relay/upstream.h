/* relay/upstream.h - rt-relay's side of its publisher: it subscribes like a subscriber
 * and stores what it takes in its own outbox, with the publisher's seqs
 * (schemas/protocol.md, "Relays").
 *
 * It takes a record only once the publisher announced it stored (a fetched record is;
 * a live one once a LIVE, HUGZ or FETCHED of the same run covers its seq), in seq
 * order, checks its transaction framing, publishes it at once on the relay's own PUB
 * (rt_stream_publish_live) and stores it with the records taken during the outbox commit
 * under way (group commit on the committer thread). Its ACK to the publisher is the
 * relay's stored head: what its outbox holds durably, so the publisher trims nothing the
 * relay's subscribers may still need from the relay. The blocks of a transaction still
 * running on the source (STREAM, STREAM_ABORT, STREAM_COMMIT) of the publisher's current
 * run go on at once on the relay's PUB, not stored, as the publisher sends them.
 *
 * Chunks of an unfinished transaction stored above the head may be replaced after the
 * publisher restarts (outbox.md, invariant 3 covers the head only): when that may have
 * happened the relay drops them (rt_outbox_discard_open) and starts a new run of its own
 * (rt_stream_new_run), so its subscribers roll back what they hold of them, exactly as
 * they do when a publisher restarts. */
#ifndef RT_UPSTREAM_H
#define RT_UPSTREAM_H

#include <czmq.h>
#include <signal.h>

#include "outbox.h"
#include "rt.h"
#include "stream.h"

typedef struct rt_upstream_t rt_upstream_t;

typedef struct {
    const char *publisher;     /* the publisher's ROUTER endpoint */
    const char *pub;           /* its PUB endpoint, or NULL to learn it from WELCOME */
    const char *name;          /* the relay's name there: routing id, HELLO name */
    zcert_t *cert;             /* CURVE: the relay's key pair (borrowed), or NULL */
    const char *publisher_key; /* CURVE: the publisher's public key, Z85 (pinned) */
    uint64_t batch_bytes;      /* most record bytes stored in one outbox commit */
} rt_upstream_opts_t;

/* Creates the upstream side for outbox (borrowed; the calling thread must own it). Its
 * records above the stored head are dropped first (their transaction comes again). The
 * committer thread is started here. NULL on failure, logged. */
rt_upstream_t *rt_upstream_new(const rt_upstream_opts_t *opts, rt_outbox_t *outbox);

/* Waits for an outbox commit in flight, closes the sockets and stops the committer;
 * clears *self_p. Safe on NULL. */
void rt_upstream_destroy(rt_upstream_t **self_p);

/* The source name the outbox belongs to: from the outbox, or, for a new outbox, learnt
 * from the publisher (PONG) once the outbox starts at the publisher's oldest record
 * (STATUS); NULL until then. */
const char *rt_upstream_source(const rt_upstream_t *self);

/* Gives the serving side (borrowed) records are published on and new runs started on;
 * until then nothing is taken, only the source is learnt. */
void rt_upstream_attach(rt_upstream_t *self, rt_stream_t *stream);

/* What the relay's STATUS says of its publisher (an rt_stream_upstream_fn; arg: the
 * rt_upstream_t). */
void rt_upstream_status(void *arg, rt_stream_upstream_t *out);

/* Most poll items rt_upstream_poll_items fills. */
#define RT_UPSTREAM_POLL_MAX 3

/* Fills items with the sockets to poll (DEALER, SUB, the committer's); returns how many. */
int rt_upstream_poll_items(const rt_upstream_t *self, zmq_pollitem_t *items);

/* How long the loop may wait for input, in ms. */
long rt_upstream_timeout(const rt_upstream_t *self);

/* Does what is due: connecting, PINGs, HELLO, FETCHes, outbox commits, ACKs. RT_OK while
 * the relay runs; else what ends it, logged: RT_ETRIMMED (the publisher no longer has
 * what the relay needs), RT_EPROTO (another source than the outbox's), RT_EINVAL (an
 * endpoint ZeroMQ rejects, or the publisher asked for a resync), RT_EIO (its outbox),
 * RT_ENOMEM. Other errors the publisher reports are logged and the relay connects again,
 * as a subscriber does. */
int rt_upstream_tick(rt_upstream_t *self) RT_WUR;

/* After the poll: handles what waits on the n items rt_upstream_poll_items filled.
 * Returns the status as rt_upstream_tick. */
int rt_upstream_handle(rt_upstream_t *self, const zmq_pollitem_t *items, int n) RT_WUR;

#endif
