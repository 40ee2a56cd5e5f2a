/* subscriber/initcopy.h - the initial copy: a replica joins a populated source through the
 * publisher (schemas/protocol.md, "Initial copy").
 *
 * Runs before streaming. When the replica has no replication origin for the source yet,
 * every published table is copied under one snapshot of the source, in parallel jobs,
 * with the state kept in the replica's rt.sync_init and rt.sync_tables so that a kill of
 * anything resumes it; then the origin is created at the copy's start seq and the
 * subscriber streams from there. */
#ifndef RT_INITCOPY_H
#define RT_INITCOPY_H

#include <czmq.h>
#include <signal.h>

#include "http.h"
#include "rt.h"
#include "wire.h"

/* The transaction-level advisory lock (pg_advisory_xact_lock) under which the
 * subscriber's sessions create the replica's rt schema and tables: two sessions starting
 * at once (the apply and a copy) must not both find it missing. */
#define RT_SCHEMA_LOCK "7470011"
/* How each of them begins: a DO block that takes that lock and creates the schema rt
 * when missing; what follows creates what it needs in rt, then ends the block
 * ("END$rt$"). */
#define RT_SCHEMA_DDL_BEGIN                                                                        \
    "DO $rt$BEGIN "                                                                                \
    "PERFORM pg_advisory_xact_lock(" RT_SCHEMA_LOCK "); "                                          \
    "IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'rt') THEN "                        \
    "CREATE SCHEMA rt; END IF; "

/* Most copy jobs (--copy-jobs). */
#define RT_INITCOPY_MAX_JOBS 64

/* What a copy shows while it runs (/api/status, /metrics), kept current by rt_initcopy_run.
 * Read by the caller's HTTP handlers, which run on the same thread (rt_http_serve, called
 * from the copy's waits). */
typedef struct {
    bool copying;                /* a copy runs: from the replica's "needed" until it returns */
    rt_copy_progress_t progress; /* how far it is; all 0 until the tables are being copied */
} rt_initcopy_state_t;

typedef struct {
    const char *publisher;     /* the publisher's ROUTER endpoint */
    const char *name;          /* subscriber name */
    const char *target;        /* replica DSN */
    zcert_t *cert;             /* CURVE: this subscriber's key pair (borrowed), or NULL */
    const char *publisher_key; /* CURVE: the publisher's public key (Z85), or NULL */
    int jobs;                  /* tables copied at once, 1..RT_INITCOPY_MAX_JOBS */
    bool truncate;             /* empty replica tables that hold rows (else refuse them) */
    bool create_tables;        /* create the tables missing on the replica (--create-tables) */
    bool tables_only;          /* a resync of chosen tables: copy those rt.sync_tables marks
                                * copying ('c'), while the apply streams */
    bool init;                 /* --init copy: copy when the replica has no progress yet */
    bool resync;               /* rtctl resync: copy every table again now */
    volatile sig_atomic_t *stop;
    rt_http_t *http;            /* served whenever a request waits, in every wait (borrowed),
                                   or NULL */
    rt_initcopy_state_t *state; /* kept current while a copy runs (borrowed), or NULL */
} rt_initcopy_opts_t;

/* Copies the published tables when the replica has no progress for the source yet and
 * init is set, when resync is set, or when an earlier copy or resync did not finish (its
 * rt.sync_init row is there); else returns at once. Without init and resync, a replica
 * that cannot be reached is left to the link. Retries with back-off after failures that may pass
 * (the publisher or a database unreachable, a session lost). Returns RT_OK once the replica is
 * ready to stream, RT_EAGAIN when a stop was requested, RT_EINVAL when the operator must act (a
 * table not empty, missing or with other columns; logged with what to do), RT_ENOMEM.
 * Serves opts->http meanwhile (on this thread) and keeps opts->state current; state->copying
 * is false again when it returns. */
int rt_initcopy_run(const rt_initcopy_opts_t *opts) RT_WUR;
/* With tables_only: RT_OK once the tables rt.sync_tables marks copying are copied (ready,
 * with the seq their replay starts after), RT_ENOTFOUND when none is marked. */

/* The replica's schema rt holds the copy's state; created when missing (also by the
 * apply, which reads it). */
extern const char *const rt_initcopy_ddl;

/* A resync of chosen tables ("schema.table" lines): marks those of them that are tables of
 * the replica copying in rt.sync_tables (the apply holds their changes from its next
 * start on; a copy with tables_only copies them). RT_OK; RT_ENOTFOUND when none is a
 * table of the replica (said); RT_EDB, RT_EIO when the replica or the publisher cannot
 * be reached. */
int rt_initcopy_mark(const rt_initcopy_opts_t *opts, const char *tables) RT_WUR;

/* True when the replica has tables a resync of chosen tables is to copy (state 'c' in
 * rt.sync_tables, of any source); false when none, or when it cannot be reached. */
bool rt_initcopy_tables_pending(const rt_initcopy_opts_t *opts);

/* Runs rt_initcopy_run(opts) on a thread of its own (for tables_only: the caller goes on
 * applying). opts is copied (its strings and cert are borrowed: they must outlive the
 * actor); its stop becomes stop, which the caller sets before zactor_destroy to end the
 * copy early; http and state are not used. When the copy ends the actor sends its result,
 * one frame with the RT_* code in decimal, and waits for zactor_destroy. NULL when out of
 * memory. */
zactor_t *rt_initcopy_actor_new(const rt_initcopy_opts_t *opts, volatile sig_atomic_t *stop);

#endif
