/* common/outbox_int.h - what the parts of the outbox share: the handle, and the
 * transactions and error logging of outbox.c that the subscribers (outbox_subs.c) use
 * too. Everyone else includes outbox.h only. */
#ifndef RT_OUTBOX_INT_H
#define RT_OUTBOX_INT_H

#include <lmdb.h>
#include <stdatomic.h>

#include "outbox.h"

struct rt_outbox_t {
    char *dir;           /* directory of the environment, for messages */
    MDB_env *env;        /* the environment */
    MDB_dbi records;     /* seq (u64 BE) -> REC frame */
    MDB_dbi meta;        /* key -> value */
    MDB_dbi subs;        /* subscriber name -> S_SUB_VALUE_LEN or S_SUB_KEEP_LEN bytes */
    MDB_dbi main;        /* the unnamed DB holding the named ones */
    MDB_txn *rtxn;       /* read transaction handle, reset whenever no call runs */
    uint64_t max_bytes;  /* size limit of the live pages (0: none) */
    size_t psize;        /* LMDB page size */
    rt_outbox_pos_t pos; /* stored position */
    uint64_t next_seq;   /* seq of the next appended record */
    uint64_t first_seq;  /* oldest stored seq, head_seq + 1 when empty */
    bool reading;        /* inside a read callback: writes are refused */
    bool readonly;       /* opened by rt_outbox_open_readonly: writes are refused */
    uint64_t read_bytes; /* record bytes read since the map's pages were last unmapped */
    uintptr_t read_lo;   /* lowest and highest map address of those records */
    uintptr_t read_hi;
    int lock_fd;    /* rt_outbox_open: DIR/writer.lock, held with flock; -1 if none */
    bool put_begun; /* between rt_outbox_put_begin and the rt_outbox_put_end that ends it */
    /* The one field another thread writes: true from rt_outbox_put_begin (or a put_end
     * asking for the write again) until rt_outbox_put_write has ended its transaction.
     * While it is set, the owning thread must not change the map's size. */
    atomic_bool put_running;
};

/* Everything else is read and written by the owning thread only (the one that opened
 * the outbox); rt_outbox_put_write reads only what is set at open and never changes
 * (dir, env, the database handles, max_bytes, psize). */

/* A unit of work run inside one write transaction by rt__outbox_write. Returns 0, a negative
 * RT_E* code (already logged, or a plain condition such as RT_EFULL) or MDB_MAP_FULL. */
typedef int (*rt__outbox_write_fn)(rt_outbox_t *self, MDB_txn *txn, void *arg);

/* Logs an LMDB failure with its context and maps it to an RT_E* code. MDB_MAP_FULL,
 * which only a write meets, is returned unchanged and not logged: rt__outbox_write grows
 * the map, rt_outbox_put_write returns RT_EAGAIN. */
int rt__outbox_fail(rt_outbox_t *self, int rc, const char *fmt, ...) RT_PRINTF(3, 4);

/* An MDB_val pointing at len bytes of data. */
MDB_val rt__outbox_val(const void *data, size_t len);

/* Runs fn in one write transaction on the owning thread and commits it (fsync'd),
 * growing the map and running fn again when it is full. Returns 0, fn's error, RT_EINVAL
 * (inside a read callback, or read-only), RT_EIO or RT_ENOMEM (logged). */
int rt__outbox_write(rt_outbox_t *self, const char *what, rt__outbox_write_fn fn, void *arg);

/* Starts the read snapshot of one call on the long-lived handle: 0, RT_EINVAL (inside a
 * read callback), RT_EIO or RT_ENOMEM (logged). *txn is valid until rt__outbox_read_end. */
int rt__outbox_read_begin(rt_outbox_t *self, MDB_txn **txn);

/* Ends the snapshot; the handle keeps its reader slot for the next call. */
void rt__outbox_read_end(rt_outbox_t *self);

/* What rt__outbox_get does with the value found: 0 or an RT_E* code (logged). */
typedef int (*rt__outbox_get_fn)(rt_outbox_t *self, const MDB_val *k, const MDB_val *v, void *arg);

/* Looks key up in dbi in a read snapshot of its own and hands the value to fn. Returns
 * fn's result, RT_ENOTFOUND, or a read failure (logged with what and key). */
int rt__outbox_get(rt_outbox_t *self, MDB_dbi dbi, const char *what, const char *key,
                   rt__outbox_get_fn fn, void *arg);

#endif
