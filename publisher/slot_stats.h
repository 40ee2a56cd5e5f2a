/* publisher/slot_stats.h - the publisher's slot as the source sees it: the WAL it retains
 * and how far behind the source's current position it is.
 *
 * The replication connection is in COPY BOTH mode, so these are read on a regular
 * connection of their own, every RT_SLOT_STATS_INTERVAL_MS, without ever waiting for the
 * source: the connection is started, polled, queried and read from the event loop, one
 * non-blocking step per rt_slot_stats_pump. A failed connection is retried with back-off
 * (1 s doubling up to 30 s); meanwhile the figures are unknown. */
#ifndef RT_SLOT_STATS_H
#define RT_SLOT_STATS_H

#include "rt.h"

typedef struct rt_slot_stats_t rt_slot_stats_t;

/* How often the figures are measured. */
#define RT_SLOT_STATS_INTERVAL_MS 2000

/* The figures of the last measurement; -1 where unknown. */
typedef struct {
    int64_t retained_wal_bytes; /* pg_current_wal_lsn() - restart_lsn of the slot */
    int64_t lag_bytes;          /* pg_current_wal_lsn() - confirmed_flush_lsn of the slot */
    int64_t lag_ms;             /* flush_lag of the slot's WAL sender in pg_stat_replication,
                                 * 0 when PostgreSQL reports none (caught up and idle); -1 when
                                 * no WAL sender holds the slot or the role may not see it */
} rt_slot_figures_t;

/* Keeps copies of dsn (the source, without replication=) and slot; connects at the first
 * pump. NULL when out of memory. */
rt_slot_stats_t *rt_slot_stats_new(const char *dsn, const char *slot);

/* Closes the connection, frees self and clears *self_p; safe on NULL. */
void rt_slot_stats_destroy(rt_slot_stats_t **self_p);

/* One step, never waiting: starts or advances the connection, sends the query when due,
 * reads what arrived of its answer. Failures are logged once until a measurement
 * succeeds again. Call from the event loop at least every few hundred milliseconds. */
void rt_slot_stats_pump(rt_slot_stats_t *self);

/* The figures of the last measurement: all -1 before the first one, once the connection
 * failed, and when the last one is older than a few intervals (a source that does not
 * answer). */
rt_slot_figures_t rt_slot_stats_get(const rt_slot_stats_t *self);

#endif
