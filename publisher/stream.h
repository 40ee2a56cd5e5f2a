/* publisher/stream.h - the publisher's ZeroMQ side: PUB fan-out and the ROUTER conversation. */
#ifndef RT_STREAM_H
#define RT_STREAM_H

#include "capture.h"
#include "curve.h"
#include "outbox.h"
#include "rt.h"
#include "slot_stats.h"
#include "sync.h"
#include "wire.h"

typedef struct rt_stream_t rt_stream_t;

typedef struct {
    const char *source;          /* source name, sent in WELCOME and PONG */
    const char *slot;            /* slot name, for STATUS */
    const char *listen;          /* ROUTER endpoint to bind */
    const char *pub;             /* PUB endpoint to bind */
    int64_t retention_s;         /* keep acknowledged records at least this long */
    int64_t pub_hwm;             /* PUB send high-water mark in messages (0: RT_LIVE_HWM) */
    zcert_t *cert;               /* CURVE: the publisher's key pair (borrowed), or NULL */
    rt_auth_t *auth;             /* with cert: who may connect and as whom (borrowed) */
    int security;                /* rt_security_t, for STATUS */
    rt_sync_t *sync;             /* initial copy sessions (borrowed), or NULL: SYNC is refused */
    rt_slot_stats_t *slot_stats; /* the slot's figures on the source, for STATUS (borrowed),
                                  * or NULL: unknown */
    uint64_t outbox_limit;       /* the outbox's size limit in bytes (0: none), for STATUS */
} rt_stream_opts_t;

/* A relay's side of its publisher, as its STATUS_REPLY reports it (capture_state, the
 * captured counters and the upstream fields). */
typedef struct {
    const char *endpoint; /* the followed publisher's ROUTER endpoint */
    bool connected;       /* following it (WELCOME received, not lost since) */
    bool blocked;         /* the relay's outbox is full: it takes nothing */
    uint64_t head;        /* the publisher's newest seq, as last heard (0: not yet) */
    uint64_t txns, rows;  /* source transactions and row changes taken since start */
} rt_stream_upstream_t;
typedef void (*rt_stream_upstream_fn)(void *arg, rt_stream_upstream_t *out);

/* Binds both sockets. NULL on failure, logged (endpoint in use, malformed). The
 * outbox and capture are borrowed (capture only for its statistics; may be NULL). */
rt_stream_t *rt_stream_new(const rt_stream_opts_t *opts, rt_outbox_t *outbox,
                           rt_capture_t *capture);
void rt_stream_destroy(rt_stream_t **self_p);

/* Makes the stream a relay's: STATUS asks fn(arg) about its publisher. */
void rt_stream_set_upstream(rt_stream_t *self, rt_stream_upstream_fn fn, void *arg);

/* The ROUTER socket's handle, for zmq_poll. */
void *rt_stream_router(rt_stream_t *self);

/* Handles the messages waiting on the ROUTER (at most a bounded number per call). */
int rt_stream_handle(rt_stream_t *self) RT_WUR;

/* Where a subscriber that says it applied seq, whose record has commit LSN lsn, stands
 * among the records stored now (publisher/resume.c): seq itself when the record there is
 * the end of that transaction, else the end of the last stored transaction committed at
 * or before lsn (records numbered anew by a run after a crash). acked: its registered
 * seq (0 if unknown). RT_OK with *pos; RT_EAGAIN when the outbox has not stored that far
 * yet; RT_ETRIMMED; RT_EPROTO (a record does not decode); RT_EIO; RT_ENOMEM. */
int rt_stream_resume_position(rt_outbox_t *outbox, uint64_t seq, rt_lsn_t lsn, uint64_t acked,
                              uint64_t *pos);

/* Publishes a record on PUB as soon as it is built, before it is durable (the
 * capture's publish callback): never blocks; past the PUB high-water mark it is dropped
 * and subscribers FETCH it once it is stored. data is copied before the call returns. */
void rt_stream_publish_live(rt_stream_t *self, uint64_t seq, const void *data, size_t len);

/* Publishes m (STREAM, STREAM_ABORT or STREAM_COMMIT: the capture's, or a relay's
 * publisher's) with this run's id on PUB;
 * past the high-water mark it is dropped, and the subscribers that miss it apply the
 * transaction after its commit. */
void rt_stream_publish_block(rt_stream_t *self, const rt_msg_t *m);

/* Sends HUGZ{newest stored seq} when nothing was published for a while; stores
 * acknowledgements; trims what every enabled subscriber acknowledged. Call after each
 * capture pump and at least every few hundred milliseconds. */
int rt_stream_tick(rt_stream_t *self) RT_WUR;

/* Starts a new run: draws another run id and announces it at once (HUGZ), so that
 * subscribers roll back what they hold unstored and say HELLO again. For an outbox whose
 * records above its head_seq were discarded while it served them (rt-relay). */
void rt_stream_new_run(rt_stream_t *self);

/* Changes the retention window (SIGHUP reload). */
void rt_stream_set_retention(rt_stream_t *self, int64_t seconds);

/* Counters of dropped input, for status and tests. */
uint64_t rt_stream_bad_frames(const rt_stream_t *self);
/* Peers dropped since start because they did not read what they asked for (peers.h). */
uint64_t rt_stream_dropped_peers(const rt_stream_t *self);

#endif
