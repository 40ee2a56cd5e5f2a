/* subscriber/initcopy_int.h - what the parts of the initial copy share: the coordinator
 * (initcopy.c), its copy jobs (initcopy_job.c) and the I/O both use (initcopy_io.c). */
#ifndef RT_INITCOPY_INT_H
#define RT_INITCOPY_INT_H

#include <czmq.h>
#include <libpq-fe.h>

#include "initcopy.h"
#include "wire.h"

/* A table of the snapshot, as this replica will load it. */
typedef struct {
    const rt_sync_table_t *src; /* from SYNC_READY */
    char *qname;                /* "schema"."table", quoted for the replica */
    char *copy_sql;             /* COPY qname (cols) FROM STDIN [(FORMAT binary)] */
    bool binary;                /* both sides have the same built-in types */
    bool ready;                 /* copied by an earlier attempt under its own snapshot */
    bool copying;               /* an earlier attempt began it: its rows are rt's own */
    bool done;                  /* copied by this attempt */
    bool asked;                 /* a resync of chosen tables copies it */
    bool post;                  /* first entry: created by --create-tables, its keys and
                                 * indexes wait in rt.sync_ddl */
    size_t group;               /* the first entry of the same table (a large table comes
                                 * in parts, ranges of its pages, copied in parallel) */
    size_t nparts;              /* first entry: the table's parts */
    size_t parts_done;          /* first entry: parts copied by this attempt */
    uint64_t rows;              /* first entry: rows of the parts copied */
} rt__copy_table_t;

/* What the jobs read (never written while they run). */
typedef struct {
    const rt_initcopy_opts_t *opts;
    uint64_t sync_id;
    rt_lsn_t lsn;
    char lsn_text[32];
    char seq_text[24]; /* a resync of chosen tables: the snapshot's head seq ("" else) */
    char source[128];
    rt__copy_table_t *tables;
    size_t ntables;
} rt__copy_plan_t;

/* A DEALER to the publisher with routing id "NAME/suffix"; NULL on failure (logged). */
zsock_t *rt__copy_dealer(const rt_initcopy_opts_t *o, const char *suffix);

/* Sends a control message on sock without blocking: RT_OK, RT_EIO, RT_ENOMEM, or the
 * encoder's error. */
int rt__copy_send(zsock_t *sock, const rt_msg_t *m);

/* Waits up to timeout_ms for a message on sock (and, if pipe is not NULL, for a command
 * on it: then RT_EAGAIN), serving http (NULL: none) meanwhile. RT_OK with *m decoded,
 * RT_EAGAIN on time out or stop, RT_EPROTO for a frame that is not a control message
 * (logged). */
int rt__copy_recv(zsock_t *sock, zsock_t *pipe, rt_http_t *http, int timeout_ms,
                  volatile sig_atomic_t *stop, rt_msg_t *m) RT_WUR;

/* Appends the poll item of the caller's HTTP server, if any, as items[*n]. Returns its
 * index, or -1 without a server. */
int rt__copy_http_poll_item(zmq_pollitem_t *items, int *n, rt_http_t *http);

/* Answers the HTTP requests waiting when items[i] (from rt__copy_http_poll_item) is
 * readable. */
void rt__copy_http_serve(rt_http_t *http, const zmq_pollitem_t *items, int i);

/* A replica connection set up for copying (session_replication_role = replica). */
int rt__copy_replica_connect(const rt_initcopy_opts_t *o, const char *app, PGconn **conn) RT_WUR;

/* Runs a statement whose result is not needed: RT_OK, RT_EDB, RT_EIO. */
int rt__copy_exec(PGconn *conn, const char *what, const char *sql, int nparams,
                  const char *const *params, char *err, size_t err_size) RT_WUR;

/* Marks a table copied, in the caller's transaction (see initcopy.c). */
int rt__copy_mark_ready(PGconn *conn, const rt__copy_plan_t *pl, const rt_sync_table_t *t,
                        uint64_t rows, char *err, size_t err_size) RT_WUR;

/* What a copy job's thread is given (malloc'd; the thread frees it). */
typedef struct {
    const rt__copy_plan_t *plan;
    int k; /* its number: routing id NAME/copy<k> */
} rt__copy_job_args_t;

/* A copy job's thread (zactor_fn). Pipe, coordinator -> job: "TABLE" <index>; "POST"
 * <index> (build a copied table's keys and indexes); $TERM. Job -> coordinator: "READY"
 * once set up, or "FAIL"; "DONE" <index> <rows> <bytes>; "BUILT" <index> <entries> <ms>;
 * "BYTES" <bytes> (progress); "FAIL" <index> <code> <text>. */
void rt__copy_job_actor(zsock_t *pipe, void *arg);

#endif
