/* subscriber/link.h - the subscriber's side of the publisher conversation (DEALER + SUB). */
#ifndef RT_LINK_H
#define RT_LINK_H

#include <signal.h>

#include "apply.h"
#include "http.h"
#include "metrics.h"
#include "rt.h"

/* Protocol timings (schemas/protocol.md). */
#define RT_LINK_FETCH_COUNT 256     /* records asked per FETCH */
#define RT_LINK_FETCH_RETRY_MS 5000 /* an unanswered FETCH is sent again */
#define RT_LINK_SILENCE_MS 5000     /* nothing from the publisher: reconnect */
#define RT_LINK_ACK_MIN_MS 100      /* ACKs at most this often */
#define RT_LINK_ACK_MAX_MS 1000     /* and at least this often */
#define RT_LINK_SUB_RCVHWM RT_LIVE_HWM /* messages the SUB socket queues */

typedef struct rt_link_t rt_link_t;

typedef struct {
    const char *publisher; /* ROUTER endpoint of the publisher, e.g. tcp://host:7470 */
    const char *pub;       /* PUB endpoint override, or NULL to learn it from WELCOME */
    const char *name;      /* subscriber name: DEALER routing id, HELLO name */
} rt_link_opts_t;

/* Creates a link (copies the options; no socket yet). stop is the flag the signal
 * handler sets. Returns NULL if out of memory. */
rt_link_t *rt_link_new(const rt_link_opts_t *opts, volatile sig_atomic_t *stop);

/* Closes the sockets and frees self; clears *self_p. */
void rt_link_destroy(rt_link_t **self_p);

/* Runs the subscriber: connects to the publisher (PING/PONG), connects apply to the
 * replica for the source it learns, says HELLO, then applies records in seq order
 * as they arrive (PUB) or are fetched (FETCH), acknowledging commits, reconnecting
 * either side with back-off as needed. Applies nothing out of order and skips
 * nothing. Returns when stop is set (RT_OK, after rolling back any open replica
 * transaction), or with RT_ETRIMMED when the publisher no longer has the records
 * the replica needs, or another RT_E* code on a fatal failure (logged). */
int rt_link_run(rt_link_t *self, rt_apply_t *apply) RT_WUR;

/* Frames received that did not decode (dropped), since creation. */
uint64_t rt_link_bad_frames(const rt_link_t *self);

/* Serves this HTTP server's requests from the link's loop (borrowed; NULL: none). */
void rt_link_set_http(rt_link_t *self, rt_http_t *http);

/* Fills m with the link's and apply's figures (strings borrowed from self). */
void rt_link_metrics(const rt_link_t *self, const rt_apply_t *apply, rt_metrics_subscriber_t *m);

/* When *flag is set (by a SIGHUP handler), the loop clears it and calls fn(arg). */
void rt_link_set_reload(rt_link_t *self, volatile sig_atomic_t *flag, void (*fn)(void *arg),
                        void *arg);

#endif
