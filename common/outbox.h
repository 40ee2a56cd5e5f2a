/* common/outbox.h - the publisher's durable LMDB outbox (layout in schemas/outbox.md). */
#ifndef RT_OUTBOX_H
#define RT_OUTBOX_H

#include "rt.h"

#define RT_OUTBOX_FORMAT 1

typedef struct rt_outbox_t rt_outbox_t;

typedef struct {
    uint64_t map_size;  /* initial LMDB map size in bytes (0: 1 GiB); grows on MDB_MAP_FULL */
    uint64_t max_bytes; /* size limit: rt_outbox_put returns RT_EFULL past it (0: none) */
} rt_outbox_opts_t;

/* Where the source stream stands after the last durable write (meta, same txn as records). */
typedef struct {
    uint64_t head_seq;        /* last seq that ends a complete source transaction, 0 if none */
    rt_lsn_t last_commit_lsn; /* commit LSN of that transaction */
    rt_lsn_t last_end_lsn;    /* end LSN of that transaction (what was confirmed) */
} rt_outbox_pos_t;

/* One record to append. */
typedef struct {
    const void *data;
    size_t len;
} rt_outbox_rec_t;

/* Opens (creating the directory and environment if missing) the outbox in dir.
 * Records above the stored head_seq (the stored chunks of a source transaction whose
 * last chunk was not stored yet) are kept: the capture resumes that transaction
 * after them. Clears stale readers. Returns NULL on failure, logged. */
rt_outbox_t *rt_outbox_open(const char *dir, const rt_outbox_opts_t *opts);
/* Opens an existing outbox for inspection only: the environment is opened MDB_RDONLY,
 * nothing is created, stamped, dropped or trimmed, and every write call (put, discard,
 * trim, subscriber put/delete, meta set) fails with RT_EINVAL. Safe while a publisher
 * runs on the same directory (LMDB readers never block it; keep calls short). Returns
 * NULL on failure, logged (no such directory, not an rt outbox, another format). */
rt_outbox_t *rt_outbox_open_readonly(const char *dir);
/* Closes; clears *self_p. Safe on NULL. */
void rt_outbox_destroy(rt_outbox_t **self_p);

/* The stored position (as of the last put). */
rt_outbox_pos_t rt_outbox_position(rt_outbox_t *self);
/* The seq the next appended record must have (largest stored seq + 1). */
uint64_t rt_outbox_next_seq(rt_outbox_t *self);
/* The oldest seq still stored; head_seq + 1 when empty. */
uint64_t rt_outbox_first_seq(rt_outbox_t *self);

/* Appends n records with seqs next_seq .. next_seq+n-1 and stores pos, in one
 * LMDB write transaction, fsync'd before it returns. pos->head_seq may be below the
 * last appended seq (chunks of a transaction still open). Grows the map and retries
 * on MDB_MAP_FULL. RT_EFULL if max_bytes would be passed (nothing written),
 * RT_EIO on a storage error (nothing written). n may be 0 to store pos alone. */
int rt_outbox_put(rt_outbox_t *self, const rt_outbox_rec_t *recs, size_t n,
                  const rt_outbox_pos_t *pos) RT_WUR;

/* Deletes the records above head_seq (chunks of a source transaction that will never
 * complete: the source sent another one in its place) and resets next_seq to
 * head_seq + 1. */
int rt_outbox_discard_open(rt_outbox_t *self) RT_WUR;

/* Calls fn for each record from seq `from` up to the last stored one (next_seq - 1,
 * which may be above head_seq: chunks of a source transaction still being stored; an
 * outbox opened read-only reads up to head_seq), at most max_records and
 * about max_bytes (at least one record). data is valid only during the call: copy it.
 * fn returns 0 to go on, non-zero to stop (that value is returned). Returns 0,
 * RT_ETRIMMED if from < first_seq, RT_EIO. No read transaction outlives the call. */
typedef int (*rt_outbox_visit_fn)(void *arg, uint64_t seq, const void *data, size_t len);
int rt_outbox_read(rt_outbox_t *self, uint64_t from, size_t max_records, size_t max_bytes,
                   rt_outbox_visit_fn fn, void *arg) RT_WUR;

/* Deletes records with seq <= upto (never above head_seq), at most max_records per
 * call; *deleted gets the count. */
int rt_outbox_trim(rt_outbox_t *self, uint64_t upto, size_t max_records, size_t *deleted) RT_WUR;

/* A registered subscriber. */
typedef struct {
    char name[128];     /* subscriber name (its ZeroMQ routing id) */
    uint64_t acked_seq; /* last seq it acknowledged as applied */
    int32_t state;      /* rt_sub_state_t as last reported */
    bool enabled;       /* false when paused: does not hold back trimming */
    bool resync;        /* an operator asked for a resync it has not carried out yet */
    uint64_t keep_from; /* a resync of chosen tables needs the records from this seq on
                         * (0: none), whatever acked_seq says */
    bool keep_copied;   /* that resync's copy ended: its next HELLO releases keep_from */
} rt_outbox_sub_t;

int rt_outbox_sub_get(rt_outbox_t *self, const char *name, rt_outbox_sub_t *sub) RT_WUR;
int rt_outbox_sub_put(rt_outbox_t *self, const rt_outbox_sub_t *sub) RT_WUR;
int rt_outbox_sub_delete(rt_outbox_t *self, const char *name) RT_WUR;
/* Calls fn for every subscriber, in name order; fn returns non-zero to stop. */
typedef int (*rt_outbox_sub_fn)(void *arg, const rt_outbox_sub_t *sub);
int rt_outbox_sub_each(rt_outbox_t *self, rt_outbox_sub_fn fn, void *arg) RT_WUR;

typedef struct {
    uint64_t records;    /* records stored */
    uint64_t used_bytes; /* pages in use * page size */
    uint64_t map_bytes;  /* current map size */
    uint64_t first_seq;  /* as rt_outbox_first_seq */
    uint64_t head_seq;   /* as rt_outbox_position().head_seq */
} rt_outbox_stat_t;

int rt_outbox_stat(rt_outbox_t *self, rt_outbox_stat_t *st) RT_WUR;

/* Meta strings (e.g. "slot", "source"): get copies into buf (NUL-terminated). */
int rt_outbox_meta_get(rt_outbox_t *self, const char *key, char *buf, size_t size) RT_WUR;
int rt_outbox_meta_set(rt_outbox_t *self, const char *key, const char *value) RT_WUR;

#endif
