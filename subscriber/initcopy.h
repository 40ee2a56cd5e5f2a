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

#include "rt.h"

/* Most copy jobs (--copy-jobs). */
#define RT_INITCOPY_MAX_JOBS 64

typedef struct {
    const char *publisher;     /* the publisher's ROUTER endpoint */
    const char *name;          /* subscriber name */
    const char *target;        /* replica DSN */
    zcert_t *cert;             /* CURVE: this subscriber's key pair (borrowed), or NULL */
    const char *publisher_key; /* CURVE: the publisher's public key (Z85), or NULL */
    int jobs;                  /* tables copied at once, 1..RT_INITCOPY_MAX_JOBS */
    bool truncate;             /* empty replica tables that hold rows (else refuse them) */
    bool create_tables;        /* create the tables missing on the replica (--create-tables) */
    bool init;                 /* --init copy: copy when the replica has no progress yet */
    bool resync;               /* rtctl resync: copy every table again now */
    volatile sig_atomic_t *stop;
} rt_initcopy_opts_t;

/* Copies the published tables when the replica has no progress for the source yet and
 * init is set, when resync is set, or when an earlier copy or resync did not finish (its
 * rt.sync_init row is there); else returns at once. Without init and resync, a replica
 * that cannot be reached is left to the link. Retries with back-off after failures that may pass
 * (the publisher or a database unreachable, a session lost). Returns RT_OK once the replica is
 * ready to stream, RT_EAGAIN when a stop was requested, RT_EINVAL when the operator must act (a
 * table not empty, missing or with other columns; logged with what to do), RT_ENOMEM. */
int rt_initcopy_run(const rt_initcopy_opts_t *opts) RT_WUR;

/* The replica's schema rt holds the copy's state; created when missing (also by the
 * apply, which reads it). */
extern const char *const rt_initcopy_ddl;

#endif
