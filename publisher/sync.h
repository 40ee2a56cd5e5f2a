/* publisher/sync.h - initial copy sessions: snapshots and table copies.
 *
 * A session (schemas/protocol.md, "Initial copy") is a thread of its own that holds a
 * temporary replication slot and its exported snapshot on a replication connection, lists
 * the published tables under that snapshot and runs one copy job per table, each a thread
 * with its own source connection streaming COPY ... TO STDOUT within the subscriber's
 * credit. Every libpq call happens in those threads: the calls below never wait for
 * PostgreSQL. What the threads send to subscribers comes back through one socket
 * (rt_sync_socket) that the event loop forwards to the ROUTER (rt_sync_pump). */
#ifndef RT_SYNC_H
#define RT_SYNC_H

#include "rt.h"
#include "wire.h"

typedef struct rt_sync_t rt_sync_t;

/* Default of part_bytes: a table larger than this many bytes on disk is offered in parts
 * of about this size (ranges of its pages), at most one per job the subscriber runs, so
 * that its jobs copy it together. */
#define RT_SYNC_PART_BYTES (64u * 1024 * 1024)

/* Most sessions at once (beyond: RT_EAGAIN), and most table copies a session runs at once. */
#define RT_SYNC_MAX_SESSIONS 8
#define RT_SYNC_MAX_JOBS 16
/* Default of the sync-timeout-seconds setting: a session not heard from for this long is
 * dropped. */
#define RT_SYNC_TIMEOUT_S 30

typedef struct {
    const char *dsn;         /* source connection string (without replication=) */
    const char *publication; /* the publication whose tables are copied */
    int64_t timeout_s;       /* drop a session not heard from for this long once it sent
                              * SYNC_READY (0: RT_SYNC_TIMEOUT_S) */
    uint64_t part_bytes;     /* size of a large table's parts (0: RT_SYNC_PART_BYTES) */
    const char *pg_dump;     /* the pg_dump that prints table definitions for SCHEMA (NULL:
                              * looked for, sync_schema.c) */
} rt_sync_opts_t;

/* Binds the socket the threads send through. NULL on failure, logged. The strings of
 * opts are copied. */
rt_sync_t *rt_sync_new(const rt_sync_opts_t *opts);

/* Drops every session (its threads end, their connections are closed, so the temporary
 * slots go) and waits for their threads: at most the connect timeout of one that is
 * still connecting, less once a stop was asked for. Clears *self_p; safe on NULL. */
void rt_sync_destroy(rt_sync_t **self_p);

/* The socket to poll (ZMQ_POLLIN) for what the sessions send. */
void *rt_sync_socket(rt_sync_t *self);

/* Starts a session for subscriber name, answering its coordinator at routing id
 * [id, idlen): SYNC_READY{sync_id, start_seq, ...} once the snapshot and the table list
 * are there, or ERROR. A session of the same name that runs already is dropped (its
 * subscriber started over).
 * Returns RT_OK with *sync_id; RT_EAGAIN when RT_SYNC_MAX_SESSIONS run; RT_ENOMEM. On
 * an error, err (err_size bytes) gets the sentence to send back. */
int rt_sync_start(rt_sync_t *self, const char *name, const char *id, size_t idlen,
                  uint64_t start_seq, uint64_t jobs, uint64_t *sync_id, char *err,
                  size_t err_size) RT_WUR;

/* A COPY{name, sync_id, table, count, flags} from routing id [id, idlen]: handed to its
 * session, which starts the table's copy or adds credit to it (and answers a bad table
 * index itself). Refreshes the session. RT_OK; RT_ENOTFOUND (no such session of that
 * name), RT_EINVAL (flags), RT_EAGAIN (the session is not keeping up), RT_ENOMEM, with
 * err set. */
int rt_sync_copy(rt_sync_t *self, const char *id, size_t idlen, const rt_msg_t *m, char *err,
                 size_t err_size) RT_WUR;

/* A SCHEMA{name, sync_id, ddl} from routing id [id, idlen]: handed to its session, which
 * answers SCHEMA_READY with the definitions of those tables (or ERROR). Refreshes the
 * session. RT_OK; RT_ENOTFOUND, RT_EAGAIN, RT_ENOMEM with err set. */
int rt_sync_schema(rt_sync_t *self, const char *id, size_t idlen, const rt_msg_t *m, char *err,
                   size_t err_size) RT_WUR;

/* SYNC_KEEP: the session of name goes on. SYNC_END: it is dropped now. RT_OK, or
 * RT_ENOTFOUND with err set. */
int rt_sync_keep(rt_sync_t *self, const char *name, uint64_t sync_id, char *err,
                 size_t err_size) RT_WUR;
int rt_sync_end(rt_sync_t *self, const char *name, uint64_t sync_id, char *err,
                size_t err_size) RT_WUR;

/* Forwards what the sessions sent (a bounded number of frames per call) to router, a
 * ROUTER socket, without blocking: a frame for a peer that is gone or full is dropped.
 * Then drops the sessions not heard from for the timeout and forgets those whose thread
 * ended. Call when rt_sync_socket is readable and at least every few hundred
 * milliseconds. */
void rt_sync_pump(rt_sync_t *self, void *router);

/* Changes the timeout (SIGHUP reload). */
void rt_sync_set_timeout(rt_sync_t *self, int64_t seconds);

#endif
