/* publisher/capture_int.h - what the pieces of the capture share (not for other modules).
 *
 * source.c sets the source up and opens the replication stream; capture.c reads it. */
#ifndef RT_CAPTURE_INT_H
#define RT_CAPTURE_INT_H

#include <libpq-fe.h>

#include "capture.h"

/* ---- source.c: set-up SQL on the source. */

/* Checks that the source's wal_level is logical and creates the publication FOR ALL
 * TABLES when missing, on a connection of its own. 0, or RT_EDB (logged). */
int rt_source_prepare(const rt_capture_opts_t *opts) RT_WUR;

/* Opens the replication connection, creates the slot when missing and starts
 * streaming (pgoutput protocol 2, streaming on). 0 with the connection in *conn (the
 * caller PQfinishes it), or RT_EDB (logged). */
int rt_source_start(const rt_capture_opts_t *opts, PGconn **conn) RT_WUR;

/* The last error of conn without its trailing newline. Borrowed from libpq: valid until
 * the next call on conn. */
char *rt_source_error(PGconn *conn);

#endif
