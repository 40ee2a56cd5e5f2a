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
/* Closes; clears *self_p. Safe on NULL. A put under way must be ended first. */
void rt_outbox_destroy(rt_outbox_t **self_p);

/* The stored position (as of the last put ended). */
rt_outbox_pos_t rt_outbox_position(rt_outbox_t *self);
/* The seq the next appended record must have (largest stored seq + 1). */
uint64_t rt_outbox_next_seq(rt_outbox_t *self);
/* The oldest seq still stored; head_seq + 1 when empty. */
uint64_t rt_outbox_first_seq(rt_outbox_t *self);

/* Threads: an outbox belongs to the thread that opened it (its "owning thread"), which
 * alone calls every function here but rt_outbox_put_write. A put may be carried out on
 * another thread in three steps (publisher/committer.c does):
 *   rt_outbox_put_begin  owning thread: checks the put and reserves its seqs;
 *   rt_outbox_put_write  any thread: the LMDB write transaction, fsync'd;
 *   rt_outbox_put_end    owning thread, with put_write's result: moves the stored
 *                        position, or grows the map and asks for the write again.
 * Between begin and end the owning thread may go on reading (rt_outbox_read, _stat,
 * _sub_get, _sub_each, _meta_get, ...) and writing (trim, subscribers, meta strings):
 * LMDB runs one write transaction at a time, so such a write waits for the put's commit.
 * Those calls see the position of the last put ended: records of the put under way are
 * neither read nor trimmed. Another put and rt_outbox_discard_open are refused
 * (RT_EINVAL) until the put ends. */

/* Appends n records with seqs next_seq .. next_seq+n-1 and stores pos, in one
 * LMDB write transaction, fsync'd before it returns. pos->head_seq may be below the
 * last appended seq (chunks of a transaction still open). Grows the map and retries
 * on MDB_MAP_FULL. RT_EFULL if max_bytes would be passed (nothing written),
 * RT_EIO on a storage error (nothing written), RT_EINVAL (logged) when called from a
 * read callback, on an outbox opened read-only, while a put begun by
 * rt_outbox_put_begin is under way, or with a head_seq outside [stored head_seq, last
 * appended seq]. n may be 0 to store pos alone. The same as rt_outbox_put_begin,
 * rt_outbox_put_write and rt_outbox_put_end in a row. */
int rt_outbox_put(rt_outbox_t *self, const rt_outbox_rec_t *recs, size_t n,
                  const rt_outbox_pos_t *pos) RT_WUR;

/* A put under way, from rt_outbox_put_begin to the rt_outbox_put_end that ends it.
 * Filled by begin; the caller only hands it over (to the thread that writes, and back). */
typedef struct {
    const rt_outbox_rec_t *recs; /* borrowed: the caller keeps the array and the bytes it
                                  * points to alive until rt_outbox_put_end ends the put */
    size_t n;                    /* records */
    rt_outbox_pos_t pos;         /* position stored with them */
    uint64_t seq;                /* seq of recs[0]: the next seq when the put began */
    int growths;                 /* map doublings for this put so far */
} rt_outbox_put_t;

/* Owning thread: checks a put of n records and pos as rt_outbox_put does and fills
 * *put. RT_EINVAL (logged, nothing begun) in the same cases as rt_outbox_put. */
int rt_outbox_put_begin(rt_outbox_t *self, const rt_outbox_rec_t *recs, size_t n,
                        const rt_outbox_pos_t *pos, rt_outbox_put_t *put) RT_WUR;

/* Any thread, once per begin (and again when rt_outbox_put_end asks for it): appends the
 * put's records and stores its position in one write transaction, fsync'd before it
 * returns. Reads no state the owning thread changes, and never changes the map's size.
 * 0; RT_EFULL if max_bytes would be passed; RT_EAGAIN if the map is full (for both,
 * nothing was written and nothing logged); RT_EIO or RT_ENOMEM on a storage error
 * (nothing written, logged). The result goes to rt_outbox_put_end. */
int rt_outbox_put_write(rt_outbox_t *self, const rt_outbox_put_t *put) RT_WUR;

/* Owning thread, once rt_outbox_put_write returned rc (and, if it ran on another
 * thread, that thread handed the put back), or with an RT_E* code of the caller's when
 * the put was never handed to a writer: ends the put, or asks for the write again.
 * rc 0: the records and position are stored, next seq and head move; returns 0.
 * rc RT_EAGAIN: doubles the map (no transaction may be open in the process: the
 * owning thread's calls have all returned) and returns RT_EAGAIN: the put is still
 * under way, call rt_outbox_put_write again with it (after too many doublings: RT_EIO,
 * logged, and the put is over). Any other rc: the put is over, nothing was stored,
 * returns rc. */
int rt_outbox_put_end(rt_outbox_t *self, rt_outbox_put_t *put, int rc) RT_WUR;

/* Deletes the records above head_seq (chunks of a source transaction that will never
 * complete: the source sent another one in its place) and resets next_seq to
 * head_seq + 1. RT_EINVAL while a put is under way. */
int rt_outbox_discard_open(rt_outbox_t *self) RT_WUR;

/* A new outbox (nothing ever stored) numbers its records from seq instead of 1: an outbox
 * that mirrors another one from its oldest record on (rt-relay). Stores head_seq =
 * seq - 1. RT_EINVAL (logged) for an outbox that is not new, or seq 0. */
int rt_outbox_start_at(rt_outbox_t *self, uint64_t seq) RT_WUR;

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
