/* subscriber/link.h - the subscriber's side of the publisher conversation (DEALER + SUB). */
#ifndef RT_LINK_H
#define RT_LINK_H

#include <czmq.h>
#include <signal.h>
#include <zmq.h>

#include "apply.h"
#include "client.h"
#include "fetch_window.h"
#include "metrics.h"
#include "rt.h"
#include "wire.h"

typedef struct rt_link_t rt_link_t;

typedef struct {
    const char *publisher;     /* ROUTER endpoint of the publisher, e.g. tcp://host:7470 */
    zcert_t *cert;             /* CURVE: the subscriber's key pair (borrowed for the link's
                                  life), or NULL for plaintext */
    const char *publisher_key; /* CURVE: the publisher's public key, Z85 (pinned) */
    const char *pub;           /* PUB endpoint override, or NULL to learn it from WELCOME */
    const char *name;          /* subscriber name: DEALER routing id, HELLO name */
    const char *target;        /* the replica's connection string, for the side session that
                                  applies a streamed transaction while it runs (NULL: such a
                                  transaction is applied after its commit only) */
} rt_link_opts_t;

/* Creates a link (copies the options; no socket yet). stop is the flag the signal
 * handler sets. Returns NULL if out of memory. */
rt_link_t *rt_link_new(const rt_link_opts_t *opts, volatile sig_atomic_t *stop);

/* Closes the sockets and frees self; clears *self_p. */
void rt_link_destroy(rt_link_t **self_p);

/* The link is driven by the caller's event loop:
 *
 *   rt_link_start(link, apply);
 *   while (not stopped) {
 *       if (rt_link_tick(link) != RT_OK) break;
 *       n = rt_link_poll_items(link, items);   (and the caller's own items after them)
 *       zmq_poll(items, n + ..., rt_link_timeout(link));
 *       if (rt_link_handle(link, items, n) != RT_OK) break;
 *   }
 *   status = rt_link_end(link);
 *
 * It connects to the publisher (PING/PONG), connects apply to the replica for the
 * source it learns, says HELLO, then applies records in seq order as they arrive (PUB)
 * or are fetched (FETCH), acknowledging commits, reconnecting either side with
 * back-off as needed. It applies nothing out of order and skips nothing.
 *
 * The status is RT_OK while the link runs; otherwise the run ends with it:
 * RT_ETRIMMED when the publisher no longer has the records the replica needs, RT_EPROTO
 * for a source name the replica cannot use, RT_EINVAL for an endpoint ZeroMQ rejects,
 * RT_ENOMEM (each logged). */

/* Most poll items rt_link_poll_items fills. */
#define RT_LINK_POLL_MAX 2

/* Starts a run with apply (borrowed until rt_link_end) from the beginning: the first
 * rt_link_tick connects to the publisher. */
void rt_link_start(rt_link_t *self, rt_apply_t *apply);

/* Does what is due now: connecting to the publisher and the replica, PINGs, HELLO,
 * FETCHes, ACKs, a retry after an apply error, and the commit of a group that is full,
 * old enough or must not wait. Returns the status. */
int rt_link_tick(rt_link_t *self) RT_WUR;

/* Fills items with the open sockets to poll for input (DEALER, SUB); returns how many
 * (0 to RT_LINK_POLL_MAX). Valid until the next rt_link_tick, rt_link_handle or
 * rt_link_end. */
int rt_link_poll_items(const rt_link_t *self, zmq_pollitem_t *items);

/* How long the loop may wait for input, in ms (at most 100): 0 when a group is ready to
 * commit, or until its age limit while it waits for the records of outstanding FETCHes. */
long rt_link_timeout(const rt_link_t *self);

/* After the poll, with the n items rt_link_poll_items filled: receives and handles what
 * waits on each readable socket, up to a batch each. When none was readable, commits the
 * group that is ready (unless it waits for FETCHes) and drops the link to a publisher
 * silent for RT_CLIENT_SILENCE_MS. Returns the status. */
int rt_link_handle(rt_link_t *self, const zmq_pollitem_t *items, int n) RT_WUR;

/* Ends the run: rolls back any open replica transaction, closes the sockets and
 * releases apply. Returns the status (RT_OK when the run was stopped from outside). */
int rt_link_end(rt_link_t *self);

/* After a run ended with RT_ERESYNC: the tables of a resync of chosen tables, one
 * "schema.table" per line (malloc'd, the caller frees), or NULL for a resync of every
 * table. */
char *rt_link_take_resync_tables(rt_link_t *self);

/* Frames received that did not decode (dropped), since creation. */
uint64_t rt_link_bad_frames(const rt_link_t *self);

/* Fills m with the link's and apply's figures (strings borrowed from self). */
void rt_link_metrics(const rt_link_t *self, const rt_apply_t *apply, rt_metrics_subscriber_t *m);

#endif
