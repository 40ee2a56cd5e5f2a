/* publisher/sync_int.h - what the pieces of the initial copy share (not for other modules).
 *
 * sync.c keeps the sessions on the event loop's side and both ends of the channel back to
 * it; sync_session.c is a session's thread (the slot, the snapshot, the table list, the
 * jobs); sync_job.c a copy job's thread (one table's COPY within its credit).
 *
 * Threads are czmq actors: they hold no shared state; what they are given is theirs, and
 * they answer only through the channel. The channel is one PUSH socket per thread
 * connected to sync.c's PULL, carrying multipart messages:
 *   "F" | routing id | frame   a wire frame to send to that routing id over the ROUTER
 *   "R" | sync id (8 bytes)    the session sent SYNC_READY: its timeout starts
 *   "E" | sync id (8 bytes)    the session failed (its thread logged why) and ends
 * Commands down an actor's pipe, besides "$TERM":
 *   to a session: "COPY" | routing id | table | count | flags   (uint64_t each, 8 bytes)
 *   to a job:     "CREDIT" | count                              (uint64_t, 8 bytes)
 * Only the end signal of the thread (czmq's, when the actor returns) goes back up a pipe,
 * so a readable pipe means that its thread has ended. */
#ifndef RT_SYNC_INT_H
#define RT_SYNC_INT_H

#include <czmq.h>

#include "buf.h"
#include "pgconn.h"
#include "sync.h"
#include "wire.h"

/* A COPY_DATA frame holds whole rows, up to about this many bytes (one larger row is
 * sent alone). */
#define RT_SYNC_FRAME_BYTES (256u * 1024)
/* Most credit (frames) a copy job holds. */
#define RT_SYNC_MAX_CREDIT 64u

/* What a session's thread is given; the thread owns it (rt_sync_session_args_free). */
typedef struct {
    uint64_t sync_id;    /* the session's id, in every message of it */
    char *name;          /* the subscriber's name */
    char *id;            /* the coordinator's routing id (idlen bytes) */
    size_t idlen;        /* its length */
    uint64_t start_seq;  /* the subscriber's acked seq, sent back in SYNC_READY */
    uint64_t jobs;       /* the jobs the subscriber runs: most parts a large table is cut in */
    uint64_t part_bytes; /* a table larger than this is cut in parts of about this size */
    char *dsn;           /* source connection string */
    char *publication;   /* whose tables are copied */
    char *slot;          /* the temporary slot's name */
    char *endpoint;      /* the channel's PULL endpoint */
    char *pg_dump;       /* the pg_dump to run for SCHEMA, NULL: looked for */
} rt_sync_session_args_t;

void rt_sync_session_args_free(rt_sync_session_args_t *args);

/* The session's thread (zactor_fn); args is an rt_sync_session_args_t. */
void rt_sync_session_actor(zsock_t *pipe, void *args);

/* What a copy job's thread is given; the thread owns it (rt_sync_job_args_free). */
typedef struct {
    uint64_t sync_id; /* its session */
    uint64_t table;   /* the table's index in SYNC_READY */
    char *what;       /* "schema.table", for messages */
    char *dsn;        /* source connection string */
    char *snapshot;   /* the exported snapshot to import */
    char *sql;        /* COPY ... TO STDOUT */
    char *id;         /* the routing id of the job that asked (idlen bytes) */
    size_t idlen;
    char *endpoint;  /* the channel's PULL endpoint */
    uint64_t credit; /* frames it may send before more credit comes */
} rt_sync_job_args_t;

void rt_sync_job_args_free(rt_sync_job_args_t *args);

/* The copy job's thread (zactor_fn); args is an rt_sync_job_args_t. */
void rt_sync_job_actor(zsock_t *pipe, void *args);

/* ---- The threads' end of the channel (sync.c). */

/* A PUSH socket connected to the channel. NULL on failure, logged. */
zsock_t *rt_sync_push_new(const char *endpoint);

/* Sends msg, encoded, to routing id [id, idlen]; memory for a COPY_DATA's bytes is not
 * kept. Waits a few seconds at most when the channel is full (the event loop stopped
 * reading). RT_OK; RT_EINVAL when msg does not encode (a frame over RT_WIRE_MAX_FRAME);
 * RT_EIO when it could not be sent. Logs nothing. */
int rt_sync_push_msg(zsock_t *push, const char *id, size_t idlen, const rt_msg_t *msg) RT_WUR;

/* Sends ERROR{code, text} to routing id [id, idlen]; a failure is only logged. */
void rt_sync_push_error(zsock_t *push, const char *id, size_t idlen, int code, const char *text);

/* Notes for the event loop about a session: RT_SYNC_NOTE_READY (it sent SYNC_READY) or
 * RT_SYNC_NOTE_FAILED (it failed, the cause is logged, and it ends). */
#define RT_SYNC_NOTE_READY 'R'
#define RT_SYNC_NOTE_FAILED 'E'
void rt_sync_push_note(zsock_t *push, char note, uint64_t sync_id);

/* Running pg_dump for a table's definition (sync_schema.c). */
typedef struct {
    const char *program;        /* pg_dump, a path or a name looked up on PATH */
    char **env;                 /* its environment (rt_sync_pg_dump_env) */
    const char *snapshot;       /* the session's exported snapshot */
    const rt_pg_waiter_t *wait; /* waits for its output while answering the session's pipe */
} rt_sync_dump_t;

/* The pg_dump to run: configured (copied), else the one of the server's major version or
 * the next newer one found in Debian's /usr/lib/postgresql/<major>/bin, else "pg_dump".
 * NULL when out of memory. */
char *rt_sync_pg_dump_program(const char *configured, int server_version);

/* This process's environment with the settings of connection string dsn as libpq's PG*
 * variables (they win), for pg_dump. NULL (err set) when dsn does not parse or out of
 * memory. */
char **rt_sync_pg_dump_env(const char *dsn, char *err, size_t err_size);
void rt_sync_env_free(char **env);

/* One definition to print: pg_dump --schema-only --section=section of table
 * schema.table, appended to out. With objects set, schema and table are NULL and the job
 * prints every object of the source that is not a relation (schemas, extensions, types,
 * domains, functions, collations, operators...) outside schema rt; with patterns set
 * (NULL-terminated --table= arguments), the relations they name. */
typedef struct {
    const char *schema, *table, *section;
    bool objects;
    char **patterns;
    rt_buf_t out;
} rt_sync_dump_job_t;

/* pg_dump's --table= argument naming exactly schema.table (malloc'd; NULL when out of
 * memory). */
char *rt_sync_table_pattern(const char *schema, const char *table);
/* Frees a NULL-terminated array of malloc'd strings (NULL-safe). */
void rt_sync_patterns_free(char **patterns);

/* pg_dumps run at once by rt_sync_pg_dumps (each is mostly its start and catalog
 * queries). */
#define RT_SYNC_DUMPS_PARALLEL 4

/* Runs the n jobs under the snapshot, RT_SYNC_DUMPS_PARALLEL at a time. RT_OK; RT_EDB or
 * RT_EINVAL with err set (pg_dump's own message when it failed), RT_ENOMEM; the waiter's
 * code when it gave up. Every pg_dump started is ended (stopped on failure). */
int rt_sync_pg_dumps(const rt_sync_dump_t *d, rt_sync_dump_job_t *jobs, size_t n, char *err,
                     size_t err_size) RT_WUR;

/* Reads an 8-byte number frame of a pipe command; 0 when the frame is missing. */
uint64_t rt_sync_pop_u64(zmsg_t *msg);

#endif
