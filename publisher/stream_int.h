/* publisher/stream_int.h - what stream.c and admin.c share (not for other modules).
 *
 * stream.c owns the sockets and the subscribers; admin.c answers the admin verbs from
 * the same state. */
#ifndef RT_STREAM_INT_H
#define RT_STREAM_INT_H

#include <czmq.h>

#include "peers.h"
#include "stream.h"

/* A subscriber as the publisher knows it. */
typedef struct {
    rt_outbox_sub_t stored; /* as in the outbox */
    int64_t last_seen_ms;   /* monotonic time of its last message, 0 never */
    bool dirty;             /* stored differs from the outbox */
    uint64_t conflicts;     /* from its last ACK */
    int64_t commit_ts;      /* from its last ACK: commit time of its last applied record */
    int64_t applied_at;     /* from its last ACK: when it applied it */
    char error[RT_ERROR_TEXT_MAX + 1]; /* from its last ACK */
    rt_copy_progress_t copy;           /* from its last SYNC_KEEP while it copies */
    uint64_t reset_from;               /* a replay with reset from this seq is under way: ACKs at or
                                        * past it are old ones until one below it arrives */
} rt_stream_sub_t;

/* When a head seq became durable, for the retention window (stream.c). */
typedef struct rt_stream_sample_t rt_stream_sample_t;

struct rt_stream_t {
    char *source, *slot, *pub_endpoint;
    int64_t retention_ms;
    rt_outbox_t *outbox;            /* borrowed */
    rt_capture_t *capture;          /* borrowed, may be NULL */
    rt_stream_upstream_fn upstream; /* a relay's: what it follows, for STATUS (or NULL) */
    void *upstream_arg;
    zsock_t *router;
    zsock_t *pub;
    rt_peers_t *peers;  /* the ROUTER's connections: what waits for each, drops */
    rt_auth_t *auth;    /* borrowed; NULL without CURVE: then anyone is anyone */
    int security;       /* rt_security_t, for STATUS */
    zhashx_t *subs;     /* name -> rt_stream_sub_t */
    uint64_t published; /* last seq sent on PUB (live: may be above the stored head) */
    uint64_t hugz_head; /* stored head of the last HUGZ */
    uint64_t run_id;    /* this run's id, random, never 0 (protocol.md, "Live records") */
    void *live_frame;   /* the encoded LIVE header of live_head (malloc'd), or NULL */
    size_t live_len;
    uint64_t live_head; /* the stored head it announces */
    int64_t last_pub_ms;
    int64_t last_persist_ms;
    int64_t last_trim_ms;
    rt_stream_sample_t *samples; /* ring of (head, time) */
    size_t nsamples, sample_start;
    uint64_t bad_frames;
    rt_record_decoder_t *dec;    /* decodes records for replay and status */
    rt_sync_t *sync;             /* initial copy sessions (borrowed), NULL without a source */
    rt_slot_stats_t *slot_stats; /* the slot's figures on the source (borrowed), or NULL */
    uint64_t outbox_limit;       /* the outbox's size limit in bytes (0: none) */
};

/* The subscriber named name, NULL if unknown; with create, registers an unknown one
 * (enabled, offline), NULL then only when out of memory. Owned by the stream: valid
 * until it is deleted from self->subs. */
rt_stream_sub_t *rt_stream_sub(rt_stream_t *self, const char *name, bool create);

/* Sends msg over the ROUTER to the subscriber itself (its routing id is its name),
 * without blocking. False when it is not connected, its queue is full, or msg does not
 * encode. */
bool rt_stream_notify(rt_stream_t *self, const char *name, const rt_msg_t *msg);

#endif
