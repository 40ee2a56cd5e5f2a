/* common/outbox.c - the publisher's durable LMDB outbox (layout in schemas/outbox.md):
 * open, put, read, trim, stat and meta strings; the subscribers are in outbox_subs.c. */
#include "outbox.h"

#include "log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox_int.h"

#define S_DEFAULT_MAP_SIZE (1ull << 30) /* initial map when opts leave it 0 */
#define S_MAX_DBS 4                     /* records, meta, subscribers (+1 spare) */
#define S_MAX_GROWTHS 40                /* map doublings for one write before giving up */
#define S_PAGE_HEADER 16                /* LMDB page header bytes */
#define S_UNMAP_EVERY (16ull << 20)     /* record bytes read between unmapping the pages */
#define S_NODE_HEADER 8                 /* LMDB node header bytes */

/* Reserved meta keys (binary values); free-form string keys must not use them. */
#define S_META_FORMAT "format"
#define S_META_HEAD "head_seq"
#define S_META_COMMIT "last_commit_lsn"
#define S_META_END "last_end_lsn"

/* Logs an LMDB failure with its context and maps it to an RT_E* code. MDB_MAP_FULL,
 * which only a write meets, is returned unchanged and not logged: rt__outbox_write grows
 * the map, rt_outbox_put_write returns RT_EAGAIN. */
int rt__outbox_fail(rt_outbox_t *self, int rc, const char *fmt, ...)
{
    if (rc == MDB_MAP_FULL)
        return rc;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    rt_error("outbox %s: %s: %s", self->dir, what, mdb_strerror(rc));
    return rc == ENOMEM ? RT_ENOMEM : RT_EIO;
}

MDB_val rt__outbox_val(const void *data, size_t len)
{
    MDB_val v = {.mv_size = len, .mv_data = (void *)data};
    return v;
}

static bool s_reserved_key(const char *key)
{
    return strcmp(key, S_META_FORMAT) == 0 || strcmp(key, S_META_HEAD) == 0 ||
           strcmp(key, S_META_COMMIT) == 0 || strcmp(key, S_META_END) == 0;
}

/* Creates dir and its missing parents with mode 0700. */
static int s_mkdirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        rt_error("outbox: directory path \"%s\" is empty or too long", dir);
        return RT_EINVAL;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            rt_error("outbox %s: cannot create directory %s: %s", dir, path, strerror(errno));
            return RT_EIO;
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rt_error("outbox %s: not a directory", dir);
        return RT_EIO;
    }
    return 0;
}

/* Doubles the map. No transaction may be open in the process: the owning thread has
 * ended its own (rtxn is reset) and no rt_outbox_put_write runs (put_running is clear). */
static int s_grow(rt_outbox_t *self)
{
    assert(!atomic_load(&self->put_running));
    MDB_envinfo info;
    int rc = mdb_env_info(self->env, &info);
    if (rc)
        return rt__outbox_fail(self, rc, "read environment info to grow the map");
    uint64_t old_size = info.me_mapsize;
    if (old_size > SIZE_MAX / 2) {
        rt_error("outbox %s: map of %" PRIu64 " bytes is full and cannot grow", self->dir,
                 old_size);
        return RT_EIO;
    }
    rc = mdb_env_set_mapsize(self->env, (size_t)old_size * 2);
    /* The map may have moved: the span of reads noted in the old one is forgotten
     * before anything could madvise memory that is no longer the map. */
    self->read_bytes = 0;
    if (rc)
        return rt__outbox_fail(self, rc, "grow the map from %" PRIu64 " bytes", old_size);
    rc = mdb_env_info(self->env, &info);
    if (rc)
        return rt__outbox_fail(self, rc, "read environment info after growing the map");
    rt_info("outbox %s: map full, grown from %" PRIu64 " to %" PRIu64 " bytes", self->dir, old_size,
            (uint64_t)info.me_mapsize);
    return 0;
}

/* Runs fn in one write transaction and commits it (fsync'd). Returns 0, fn's error,
 * RT_EIO, or MDB_MAP_FULL (from fn or the commit: nothing was written). Touches no
 * field of self that changes after open: rt_outbox_put_write runs it on any thread. */
static int s_write_once(rt_outbox_t *self, const char *what, rt__outbox_write_fn fn, void *arg)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc)
        return rt__outbox_fail(self, rc, "%s: begin write transaction", what);
    rc = fn(self, txn, arg);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn); /* frees txn, also on failure */
    if (rc)
        return rt__outbox_fail(self, rc, "%s: commit", what);
    return 0;
}

/* Waits until a put running on another thread has ended its transaction (a write of
 * this thread found the map full: it may grow it only then). The put's outcome is
 * collected later, as usual. */
static void s_wait_put(rt_outbox_t *self)
{
    while (atomic_load(&self->put_running))
        usleep(1000);
}

/* Runs fn in one write transaction on the owning thread and commits it (fsync'd). On
 * MDB_MAP_FULL, from fn or from the commit, the transaction is gone: doubles the map
 * (once a put running on another thread is done with its own transaction) and runs fn
 * again. */
int rt__outbox_write(rt_outbox_t *self, const char *what, rt__outbox_write_fn fn, void *arg)
{
    if (self->reading) {
        rt_error("outbox %s: %s called from inside a read callback", self->dir, what);
        return RT_EINVAL;
    }
    if (self->readonly) {
        rt_error("outbox %s: %s refused: opened read-only", self->dir, what);
        return RT_EINVAL;
    }
    for (int growths = 0;; growths++) {
        int rc = s_write_once(self, what, fn, arg);
        if (rc != MDB_MAP_FULL)
            return rc;
        if (growths >= S_MAX_GROWTHS) {
            rt_error("outbox %s: %s: map still full after %d doublings", self->dir, what,
                     S_MAX_GROWTHS);
            return RT_EIO;
        }
        s_wait_put(self);
        if ((rc = s_grow(self)) != 0)
            return rc;
    }
}

/* Starts the read snapshot of one call on the long-lived handle. */
int rt__outbox_read_begin(rt_outbox_t *self, MDB_txn **txn)
{
    int rc;
    if (self->reading) {
        rt_error("outbox %s: read from inside a read callback", self->dir);
        return RT_EINVAL;
    }
    if (self->rtxn) {
        rc = mdb_txn_renew(self->rtxn);
        if (rc) {
            mdb_txn_abort(self->rtxn);
            self->rtxn = NULL;
        }
    } else {
        rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &self->rtxn);
        if (rc)
            self->rtxn = NULL;
    }
    if (rc)
        return rt__outbox_fail(self, rc, "begin read transaction");
    *txn = self->rtxn;
    return 0;
}

/* Ends the snapshot; the handle keeps its reader slot for the next call. */
void rt__outbox_read_end(rt_outbox_t *self)
{
    if (self->rtxn)
        mdb_txn_reset(self->rtxn);
}

static int s_meta_get_u64(rt_outbox_t *self, MDB_txn *txn, const char *key, uint64_t *value,
                          bool *found)
{
    MDB_val k = rt__outbox_val(key, strlen(key)), v;
    int rc = mdb_get(txn, self->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *value = 0;
        if (found)
            *found = false;
        return 0;
    }
    if (rc)
        return rt__outbox_fail(self, rc, "read meta %s", key);
    if (v.mv_size != 8) {
        rt_error("outbox %s: meta %s has %zu bytes, expected 8", self->dir, key, v.mv_size);
        return RT_EIO;
    }
    *value = rt_get_be64(v.mv_data);
    if (found)
        *found = true;
    return 0;
}

static int s_meta_put_u64(rt_outbox_t *self, MDB_txn *txn, const char *key, uint64_t value)
{
    unsigned char buf[8];
    rt_put_be64(buf, value);
    MDB_val k = rt__outbox_val(key, strlen(key)), v = rt__outbox_val(buf, sizeof buf);
    int rc = mdb_put(txn, self->meta, &k, &v, 0);
    if (rc)
        return rt__outbox_fail(self, rc, "write meta %s = %" PRIu64, key, value);
    return 0;
}

/* Pages in use (the B-trees of every DB and the two meta pages) times the page size.
 * Pages on LMDB's free list are not counted: they are reused before the file grows. */
static int s_used_bytes(rt_outbox_t *self, MDB_txn *txn, uint64_t *used)
{
    MDB_dbi dbis[] = {self->main, self->records, self->meta, self->subs};
    uint64_t pages = 2;
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++) {
        MDB_stat st;
        int rc = mdb_stat(txn, dbis[i], &st);
        if (rc)
            return rt__outbox_fail(self, rc, "stat a database");
        pages += (uint64_t)st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    *used = pages * self->psize;
    return 0;
}

/* Estimated bytes the records take once stored: a leaf node each, or overflow pages
 * for values too large for a leaf. */
static uint64_t s_estimate_bytes(rt_outbox_t *self, const rt_outbox_rec_t *recs, size_t n)
{
    size_t nodemax = (self->psize - S_PAGE_HEADER) / 2 - sizeof(uint16_t);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t node = S_NODE_HEADER + 8 + (uint64_t)recs[i].len;
        if (node + sizeof(uint16_t) <= nodemax) {
            bytes += node + sizeof(uint16_t);
        } else {
            uint64_t pages = (recs[i].len + S_PAGE_HEADER + self->psize - 1) / self->psize;
            bytes += pages * self->psize + S_NODE_HEADER + 8 + sizeof(uint64_t) + sizeof(uint16_t);
        }
    }
    return bytes;
}

/* Finds the oldest and the newest stored seq (head + 1 and head when empty). */
static int s_bounds(rt_outbox_t *self, MDB_txn *txn, uint64_t head, uint64_t *first_seq,
                    uint64_t *last_seq)
{
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, self->records, &cur);
    if (rc)
        return rt__outbox_fail(self, rc, "open a cursor on records");
    MDB_val k, v;
    uint64_t *outs[2] = {first_seq, last_seq};
    MDB_cursor_op ops[2] = {MDB_FIRST, MDB_LAST};
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = mdb_cursor_get(cur, &k, &v, ops[i]);
        if (rc == MDB_NOTFOUND) {
            *first_seq = head + 1;
            *last_seq = head;
            rc = 0;
            break;
        }
        if (rc) {
            rc = rt__outbox_fail(self, rc, "find the %s record", i ? "last" : "first");
        } else if (k.mv_size != 8) {
            rt_error("outbox %s: record key of %zu bytes, expected 8", self->dir, k.mv_size);
            rc = RT_EIO;
        } else {
            *outs[i] = rt_get_be64(k.mv_data);
        }
    }
    mdb_cursor_close(cur);
    if (rc == 0 && *last_seq < head && *first_seq <= head) {
        rt_error("outbox %s: records end at seq %" PRIu64 " but head_seq is %" PRIu64, self->dir,
                 *last_seq, head);
        rc = RT_EIO;
    }
    if (rc == 0 && *last_seq < head)
        *last_seq = head; /* everything trimmed */
    return rc;
}

/* Deletes the records above head (chunks of a source transaction that will never
 * complete: the source sent another in its place) and finds the oldest record left. */
static int s_drop_above(rt_outbox_t *self, MDB_txn *txn, uint64_t head, uint64_t *dropped,
                        uint64_t *first_seq)
{
    MDB_cursor *cur = NULL;
    *dropped = 0;
    int rc = mdb_cursor_open(txn, self->records, &cur);
    if (rc)
        return rt__outbox_fail(self, rc, "open a cursor on records");
    MDB_val k, v;
    for (;;) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) {
            rc = rt__outbox_fail(self, rc, "find the last record");
            goto cleanup;
        }
        if (k.mv_size != 8) {
            rt_error("outbox %s: record key of %zu bytes, expected 8", self->dir, k.mv_size);
            rc = RT_EIO;
            goto cleanup;
        }
        uint64_t seq = rt_get_be64(k.mv_data);
        if (seq <= head)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc) {
            rc = rt__outbox_fail(self, rc, "drop record seq %" PRIu64 " above head_seq %" PRIu64,
                                 seq, head);
            goto cleanup;
        }
        (*dropped)++;
    }
cleanup:
    mdb_cursor_close(cur);
    uint64_t last;
    return rc ? rc : s_bounds(self, txn, head, first_seq, &last);
}

/* ---- Open */

typedef struct {
    rt_outbox_pos_t pos; /* position read from meta */
    uint64_t first_seq;  /* oldest record */
    uint64_t last_seq;   /* newest record (above head_seq: a transaction still open) */
} s_open_t;

static int s_open_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    s_open_t *o = arg;
    memset(o, 0, sizeof *o);
    int rc = mdb_dbi_open(txn, "records", MDB_CREATE, &self->records);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "subscribers", MDB_CREATE, &self->subs);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &self->main);
    if (rc)
        return rt__outbox_fail(self, rc, "open the named databases");

    uint64_t format;
    bool found;
    rc = s_meta_get_u64(self, txn, S_META_FORMAT, &format, &found);
    if (rc)
        return rc;
    if (found && format != RT_OUTBOX_FORMAT) {
        rt_error("outbox %s has format %" PRIu64 ", this build reads format %d only; refusing "
                 "to open it",
                 self->dir, format, RT_OUTBOX_FORMAT);
        return RT_EINVAL;
    }
    if (!found) {
        MDB_stat st;
        rc = mdb_stat(txn, self->records, &st);
        if (rc)
            return rt__outbox_fail(self, rc, "stat records");
        if (st.ms_entries > 0) {
            rt_error("outbox %s holds %zu records but no format version; refusing to open it",
                     self->dir, st.ms_entries);
            return RT_EINVAL;
        }
        rc = s_meta_put_u64(self, txn, S_META_FORMAT, RT_OUTBOX_FORMAT);
        if (rc)
            return rc;
    }

    if ((rc = s_meta_get_u64(self, txn, S_META_HEAD, &o->pos.head_seq, NULL)) ||
        (rc = s_meta_get_u64(self, txn, S_META_COMMIT, &o->pos.last_commit_lsn, NULL)) ||
        (rc = s_meta_get_u64(self, txn, S_META_END, &o->pos.last_end_lsn, NULL)))
        return rc;

    return s_bounds(self, txn, o->pos.head_seq, &o->first_seq, &o->last_seq);
}

/* Takes DIR/writer.lock for this process (flock, released when the process ends, even
 * by kill -9) and writes its pid in it. RT_OK, or RT_EINVAL when another process holds
 * it (logged, naming that process), RT_EIO on another failure (logged). */
static int s_lock(rt_outbox_t *self)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/writer.lock", self->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rt_error("outbox %s: cannot open %s: %s", self->dir, path, strerror(errno));
        return RT_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (err == EWOULDBLOCK) {
            rt_error("outbox %s is in use by another process (pid %s): one publisher per "
                     "outbox",
                     self->dir, pid[0] ? pid : "?");
            return RT_EINVAL;
        }
        rt_error("outbox %s: cannot lock %s: %s", self->dir, path, strerror(err));
        return RT_EIO;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        rt_warn("outbox %s: cannot write the pid into %s: %s", self->dir, path, strerror(errno));
    self->lock_fd = fd;
    return RT_OK;
}

rt_outbox_t *rt_outbox_open(const char *dir, const rt_outbox_opts_t *opts)
{
    rt_outbox_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    if (!dir || s_mkdirs(dir) != 0)
        return NULL;
    rt_outbox_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        rt_error("outbox %s: out of memory", dir);
        free(self);
        return NULL;
    }
    self->max_bytes = opts->max_bytes;
    self->lock_fd = -1;
    atomic_init(&self->put_running, false);
    uint64_t map_size = opts->map_size ? opts->map_size : S_DEFAULT_MAP_SIZE;
    if (s_lock(self) != RT_OK)
        goto fail;

    int rc = mdb_env_create(&self->env);
    if (rc) {
        rt__outbox_fail(self, rc, "create the environment");
        self->env = NULL;
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(self->env, S_MAX_DBS)) != 0) {
        rt__outbox_fail(self, rc, "set the number of databases");
        goto fail;
    }
    if ((rc = mdb_env_set_mapsize(self->env, (size_t)map_size)) != 0) {
        rt__outbox_fail(self, rc, "set the map size to %" PRIu64 " bytes", map_size);
        goto fail;
    }
    /* Default durability: every commit is fsync'd (no NOSYNC/NOMETASYNC). */
    if ((rc = mdb_env_open(self->env, dir, MDB_NOTLS, 0600)) != 0) {
        rt__outbox_fail(self, rc, "open the environment");
        goto fail;
    }
    int dead = 0;
    if ((rc = mdb_reader_check(self->env, &dead)) != 0) {
        rt__outbox_fail(self, rc, "clear stale readers");
        goto fail;
    }
    if (dead > 0)
        rt_info("outbox %s: cleared %d stale reader slots", dir, dead);
    MDB_stat est;
    if ((rc = mdb_env_stat(self->env, &est)) != 0) {
        rt__outbox_fail(self, rc, "read environment stat");
        goto fail;
    }
    self->psize = est.ms_psize;

    s_open_t o;
    if (rt__outbox_write(self, "open", s_open_txn, &o) != 0)
        goto fail;
    self->pos = o.pos;
    self->first_seq = o.first_seq;
    self->next_seq = o.last_seq + 1;
    if (o.last_seq > o.pos.head_seq)
        rt_info("outbox %s: opened, head_seq %" PRIu64 ", first_seq %" PRIu64 ", records %" PRIu64
                "..%" PRIu64 " begin a transaction still open",
                dir, self->pos.head_seq, self->first_seq, o.pos.head_seq + 1, o.last_seq);
    else
        rt_info("outbox %s: opened, head_seq %" PRIu64 ", first_seq %" PRIu64, dir,
                self->pos.head_seq, self->first_seq);
    return self;

fail:
    rt_outbox_destroy(&self);
    return NULL;
}

/* Reads the named databases, the format and the position in one read transaction. */
static int s_open_readonly_txn(rt_outbox_t *self)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rt__outbox_fail(self, rc, "begin read transaction");
    const char *names[] = {"records", "meta", "subscribers"};
    MDB_dbi *dbis[] = {&self->records, &self->meta, &self->subs};
    for (size_t i = 0; i < 3; i++) {
        rc = mdb_dbi_open(txn, names[i], 0, dbis[i]);
        if (rc == MDB_NOTFOUND) {
            rt_error("outbox %s: no \"%s\" database: not an rt outbox", self->dir, names[i]);
            rc = RT_EINVAL;
            goto cleanup;
        }
        if (rc) {
            rc = rt__outbox_fail(self, rc, "open the %s database", names[i]);
            goto cleanup;
        }
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &self->main)) != 0) {
        rc = rt__outbox_fail(self, rc, "open the main database");
        goto cleanup;
    }
    uint64_t format = 0;
    bool found = false;
    if ((rc = s_meta_get_u64(self, txn, S_META_FORMAT, &format, &found)) != 0)
        goto cleanup;
    if (!found || format != RT_OUTBOX_FORMAT) {
        rt_error("outbox %s has format %" PRIu64 "%s, this build reads format %d only", self->dir,
                 format, found ? "" : " (none stored)", RT_OUTBOX_FORMAT);
        rc = RT_EINVAL;
        goto cleanup;
    }
    if ((rc = s_meta_get_u64(self, txn, S_META_HEAD, &self->pos.head_seq, NULL)) ||
        (rc = s_meta_get_u64(self, txn, S_META_COMMIT, &self->pos.last_commit_lsn, NULL)) ||
        (rc = s_meta_get_u64(self, txn, S_META_END, &self->pos.last_end_lsn, NULL)))
        goto cleanup;
    if ((rc = mdb_cursor_open(txn, self->records, &cur)) != 0) {
        rc = rt__outbox_fail(self, rc, "open a cursor on records");
        cur = NULL;
        goto cleanup;
    }
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == MDB_NOTFOUND) {
        self->first_seq = self->pos.head_seq + 1;
        rc = 0;
    } else if (rc) {
        rc = rt__outbox_fail(self, rc, "find the first record");
    } else if (k.mv_size != 8) {
        rt_error("outbox %s: record key of %zu bytes, expected 8", self->dir, k.mv_size);
        rc = RT_EIO;
    } else {
        self->first_seq = rt_get_be64(k.mv_data);
    }
cleanup:
    if (cur)
        mdb_cursor_close(cur);
    if (rc == 0) {
        rc = mdb_txn_commit(txn); /* keeps the database handles */
        if (rc)
            rc = rt__outbox_fail(self, rc, "end the read transaction");
    } else {
        mdb_txn_abort(txn);
    }
    return rc;
}

rt_outbox_t *rt_outbox_open_readonly(const char *dir)
{
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rt_error("outbox %s: no such directory", dir ? dir : "(null)");
        return NULL;
    }
    rt_outbox_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        rt_error("outbox %s: out of memory", dir);
        free(self);
        return NULL;
    }
    self->readonly = true;
    self->lock_fd = -1;
    atomic_init(&self->put_running, false);
    int rc = mdb_env_create(&self->env);
    if (rc) {
        rt__outbox_fail(self, rc, "create the environment");
        self->env = NULL;
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(self->env, S_MAX_DBS)) != 0) {
        rt__outbox_fail(self, rc, "set the number of databases");
        goto fail;
    }
    /* Map size 0: LMDB uses the size recorded in the environment. */
    if ((rc = mdb_env_open(self->env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
        rt__outbox_fail(self, rc, "open the environment read-only");
        goto fail;
    }
    MDB_stat est;
    if ((rc = mdb_env_stat(self->env, &est)) != 0) {
        rt__outbox_fail(self, rc, "read environment stat");
        goto fail;
    }
    self->psize = est.ms_psize;
    if (s_open_readonly_txn(self) != 0)
        goto fail;
    self->next_seq = self->pos.head_seq + 1;
    return self;
fail:
    rt_outbox_destroy(&self);
    return NULL;
}

void rt_outbox_destroy(rt_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_outbox_t *self = *self_p;
    if (self->rtxn)
        mdb_txn_abort(self->rtxn);
    if (self->env)
        mdb_env_close(self->env);
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

rt_outbox_pos_t rt_outbox_position(rt_outbox_t *self)
{
    return self->pos;
}

uint64_t rt_outbox_next_seq(rt_outbox_t *self)
{
    return self->next_seq;
}

uint64_t rt_outbox_first_seq(rt_outbox_t *self)
{
    return self->first_seq;
}

/* ---- Put */

static int s_put_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    const rt_outbox_put_t *p = arg;
    if (self->max_bytes > 0) {
        uint64_t used = 0;
        int rc = s_used_bytes(self, txn, &used);
        if (rc)
            return rc;
        if (used + s_estimate_bytes(self, p->recs, p->n) > self->max_bytes)
            return RT_EFULL;
    }
    if (p->n > 0) {
        MDB_cursor *cur = NULL;
        int rc = mdb_cursor_open(txn, self->records, &cur);
        if (rc)
            return rt__outbox_fail(self, rc, "open a cursor on records");
        for (size_t i = 0; i < p->n; i++) {
            uint64_t seq = p->seq + i;
            unsigned char key[8];
            rt_put_be64(key, seq);
            MDB_val k = rt__outbox_val(key, sizeof key),
                    v = rt__outbox_val(p->recs[i].data, p->recs[i].len);
            rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
            if (rc) {
                mdb_cursor_close(cur);
                return rt__outbox_fail(self, rc, "append record seq %" PRIu64, seq);
            }
        }
        mdb_cursor_close(cur);
    }
    int rc;
    if ((rc = s_meta_put_u64(self, txn, S_META_HEAD, p->pos.head_seq)) ||
        (rc = s_meta_put_u64(self, txn, S_META_COMMIT, p->pos.last_commit_lsn)) ||
        (rc = s_meta_put_u64(self, txn, S_META_END, p->pos.last_end_lsn)))
        return rc;
    return 0;
}

int rt_outbox_put_begin(rt_outbox_t *self, const rt_outbox_rec_t *recs, size_t n,
                        const rt_outbox_pos_t *pos, rt_outbox_put_t *put)
{
    if (self->reading || self->readonly || self->put_begun) {
        rt_error("outbox %s: put refused: %s", self->dir,
                 self->reading    ? "called from inside a read callback"
                 : self->readonly ? "opened read-only"
                                  : "another put is under way");
        return RT_EINVAL;
    }
    if (!pos || !put || (n > 0 && !recs)) {
        rt_error("outbox %s: put without position or records", self->dir);
        return RT_EINVAL;
    }
    uint64_t last = self->next_seq + n - 1;
    if (pos->head_seq < self->pos.head_seq || pos->head_seq > last) {
        rt_error("outbox %s: put of seqs %" PRIu64 "..%" PRIu64 " with head_seq %" PRIu64
                 " (stored head_seq %" PRIu64 ")",
                 self->dir, self->next_seq, last, pos->head_seq, self->pos.head_seq);
        return RT_EINVAL;
    }
    *put = (rt_outbox_put_t){.recs = recs, .n = n, .pos = *pos, .seq = self->next_seq};
    self->put_begun = true;
    atomic_store(&self->put_running, true);
    return 0;
}

int rt_outbox_put_write(rt_outbox_t *self, const rt_outbox_put_t *put)
{
    int rc = s_write_once(self, "put", s_put_txn, (void *)put);
    atomic_store(&self->put_running, false); /* no transaction of this call is left */
    return rc == MDB_MAP_FULL ? RT_EAGAIN : rc;
}

int rt_outbox_put_end(rt_outbox_t *self, rt_outbox_put_t *put, int rc)
{
    assert(self->put_begun);
    atomic_store(&self->put_running, false); /* the caller says no write runs */
    if (rc == RT_EAGAIN) {
        if (put->growths >= S_MAX_GROWTHS) {
            rt_error("outbox %s: put: map still full after %d doublings", self->dir, S_MAX_GROWTHS);
            rc = RT_EIO;
        } else if ((rc = s_grow(self)) == 0) {
            put->growths++;
            atomic_store(&self->put_running, true); /* the caller writes it again */
            return RT_EAGAIN;
        }
    }
    self->put_begun = false;
    if (rc)
        return rc;
    self->next_seq += put->n;
    self->pos = put->pos;
    return 0;
}

int rt_outbox_put(rt_outbox_t *self, const rt_outbox_rec_t *recs, size_t n,
                  const rt_outbox_pos_t *pos)
{
    rt_outbox_put_t put;
    int rc = rt_outbox_put_begin(self, recs, n, pos, &put);
    if (rc)
        return rc;
    do
        rc = rt_outbox_put_end(self, &put, rt_outbox_put_write(self, &put));
    while (rc == RT_EAGAIN);
    return rc;
}

typedef struct {
    uint64_t dropped;   /* out: records deleted */
    uint64_t first_seq; /* out: oldest record left */
} s_discard_t;

static int s_discard_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    s_discard_t *d = arg;
    return s_drop_above(self, txn, self->pos.head_seq, &d->dropped, &d->first_seq);
}

int rt_outbox_discard_open(rt_outbox_t *self)
{
    if (self->put_begun) {
        rt_error("outbox %s: discard refused: a put is under way", self->dir);
        return RT_EINVAL;
    }
    if (self->next_seq == self->pos.head_seq + 1)
        return 0; /* nothing above head_seq */
    s_discard_t d = {0};
    int rc = rt__outbox_write(self, "discard", s_discard_txn, &d);
    if (rc)
        return rc;
    self->next_seq = self->pos.head_seq + 1;
    self->first_seq = d.first_seq;
    rt_info("outbox %s: discarded %" PRIu64 " records above head_seq %" PRIu64, self->dir,
            d.dropped, self->pos.head_seq);
    return 0;
}

/* ---- Start at */

static int s_start_at_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    return s_meta_put_u64(self, txn, S_META_HEAD, *(const uint64_t *)arg);
}

int rt_outbox_start_at(rt_outbox_t *self, uint64_t seq)
{
    if (self->put_begun || seq == 0 || self->next_seq != 1 || self->pos.head_seq != 0) {
        rt_error("outbox %s: cannot start at seq %" PRIu64 ": it is not new (next seq %" PRIu64 ")",
                 self->dir, seq, self->next_seq);
        return RT_EINVAL;
    }
    if (seq == 1)
        return 0;
    uint64_t head = seq - 1;
    int rc = rt__outbox_write(self, "start at", s_start_at_txn, &head);
    if (rc)
        return rc;
    self->pos.head_seq = head;
    self->next_seq = seq;
    self->first_seq = seq;
    rt_info("outbox %s: starts at seq %" PRIu64, self->dir, seq);
    return 0;
}

/* ---- Read */

/* Every page a reader touches stays mapped into the process, so a reader streaming
 * a large outbox would see its resident size grow with it (page cache counted as the
 * process's, clean and shared but alarming to RSS monitors and limits). Every
 * S_UNMAP_EVERY bytes read, the page table entries of the span of the map those
 * records were read from are dropped (LMDB does not expose the map's address, but
 * every value it returns points into the map): the pages stay in the page cache and
 * the next access maps them again, so this is safe even for a pointer still held. */
static void s_note_read(rt_outbox_t *self, const MDB_val *v)
{
    uintptr_t lo = (uintptr_t)v->mv_data, hi = lo + v->mv_size;
    if (self->read_bytes == 0 || lo < self->read_lo)
        self->read_lo = lo;
    if (self->read_bytes == 0 || hi > self->read_hi)
        self->read_hi = hi;
    self->read_bytes += v->mv_size;
}

static void s_unmap_pages(rt_outbox_t *self)
{
    if (self->read_bytes < S_UNMAP_EVERY)
        return;
    uintptr_t page = (uintptr_t)self->psize;
    uintptr_t lo = self->read_lo & ~(page - 1);
    uintptr_t hi = (self->read_hi + page - 1) & ~(page - 1);
    self->read_bytes = 0;
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0)
        rt_debug("outbox %s: madvise(MADV_DONTNEED) on %zu bytes of the map: %s", self->dir,
                 (size_t)(hi - lo), strerror(errno));
}

int rt_outbox_read(rt_outbox_t *self, uint64_t from, size_t max_records, size_t max_bytes,
                   rt_outbox_visit_fn fn, void *arg)
{
    if (!fn || self->reading) {
        rt_error("outbox %s: read without a callback or from inside one", self->dir);
        return RT_EINVAL;
    }
    if (from == 0)
        from = 1;                       /* seqs start at 1 */
    uint64_t head = self->next_seq - 1; /* the last stored record */
    if (from > head)
        return 0;
    if (from < self->first_seq)
        return RT_ETRIMMED;

    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = rt__outbox_read_begin(self, &txn);
    if (rc)
        return rc;
    rc = mdb_cursor_open(txn, self->records, &cur);
    if (rc) {
        rc = rt__outbox_fail(self, rc, "open a cursor on records to read seq %" PRIu64, from);
        cur = NULL;
        goto cleanup;
    }
    unsigned char key[8];
    rt_put_be64(key, from);
    MDB_val k = rt__outbox_val(key, sizeof key), v;
    MDB_cursor_op op = MDB_SET_KEY;
    size_t count = 0, bytes = 0;
    for (uint64_t seq = from; seq <= head; seq++) {
        if (max_records > 0 && count >= max_records)
            break;
        rc = mdb_cursor_get(cur, &k, &v, op);
        op = MDB_NEXT;
        if (rc == MDB_NOTFOUND) {
            rt_error("outbox %s: record seq %" PRIu64 " missing (last stored %" PRIu64 ")",
                     self->dir, seq, head);
            rc = RT_EIO;
            goto cleanup;
        }
        if (rc) {
            rc = rt__outbox_fail(self, rc, "read record seq %" PRIu64, seq);
            goto cleanup;
        }
        if (k.mv_size != 8 || rt_get_be64(k.mv_data) != seq) {
            rt_error("outbox %s: record seq %" PRIu64 " missing (found another key)", self->dir,
                     seq);
            rc = RT_EIO;
            goto cleanup;
        }
        if (max_bytes > 0 && count > 0 && bytes + v.mv_size > max_bytes)
            break;
        count++;
        bytes += v.mv_size;
        s_note_read(self, &v);
        self->reading = true;
        rc = fn(arg, seq, v.mv_data, v.mv_size);
        self->reading = false;
        if (rc)
            goto cleanup;
    }
    rc = 0;
cleanup:
    if (cur)
        mdb_cursor_close(cur);
    rt__outbox_read_end(self);
    s_unmap_pages(self);
    return rc;
}

/* ---- Trim */

typedef struct {
    uint64_t upto;      /* last seq to delete */
    size_t max_records; /* at most this many (0: no limit) */
    size_t deleted;     /* out: records deleted */
    uint64_t first_seq; /* out: oldest record left */
} s_trim_t;

static int s_trim_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    s_trim_t *t = arg;
    t->deleted = 0;
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, self->records, &cur);
    if (rc)
        return rt__outbox_fail(self, rc, "open a cursor on records to trim");
    MDB_val k, v;
    for (;;) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == MDB_NOTFOUND) {
            t->first_seq = self->pos.head_seq + 1;
            rc = 0;
            break;
        }
        if (rc) {
            rc = rt__outbox_fail(self, rc, "find the first record to trim");
            break;
        }
        if (k.mv_size != 8) {
            rt_error("outbox %s: record key of %zu bytes, expected 8", self->dir, k.mv_size);
            rc = RT_EIO;
            break;
        }
        uint64_t seq = rt_get_be64(k.mv_data);
        if (seq > t->upto || (t->max_records > 0 && t->deleted >= t->max_records)) {
            t->first_seq = seq;
            break;
        }
        rc = mdb_cursor_del(cur, 0);
        if (rc) {
            rc = rt__outbox_fail(self, rc, "trim record seq %" PRIu64, seq);
            break;
        }
        t->deleted++;
    }
    mdb_cursor_close(cur);
    return rc;
}

int rt_outbox_trim(rt_outbox_t *self, uint64_t upto, size_t max_records, size_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (upto > self->pos.head_seq)
        upto = self->pos.head_seq;
    if (upto < self->first_seq)
        return 0;
    s_trim_t t = {.upto = upto, .max_records = max_records};
    int rc = rt__outbox_write(self, "trim", s_trim_txn, &t);
    if (rc)
        return rc;
    self->first_seq = t.first_seq;
    if (deleted)
        *deleted = t.deleted;
    return 0;
}

/* ---- Stat and meta strings */

int rt_outbox_stat(rt_outbox_t *self, rt_outbox_stat_t *st)
{
    memset(st, 0, sizeof *st);
    MDB_txn *txn = NULL;
    int rc = rt__outbox_read_begin(self, &txn);
    if (rc)
        return rc;
    MDB_stat rs;
    MDB_envinfo info;
    rc = mdb_stat(txn, self->records, &rs);
    if (rc) {
        rc = rt__outbox_fail(self, rc, "stat records");
        goto cleanup;
    }
    if ((rc = s_used_bytes(self, txn, &st->used_bytes)) != 0)
        goto cleanup;
    rc = mdb_env_info(self->env, &info);
    if (rc) {
        rc = rt__outbox_fail(self, rc, "read environment info");
        goto cleanup;
    }
    st->records = rs.ms_entries;
    st->map_bytes = info.me_mapsize;
    st->first_seq = self->first_seq;
    st->head_seq = self->pos.head_seq;
cleanup:
    rt__outbox_read_end(self);
    return rc;
}

static int s_meta_key(rt_outbox_t *self, const char *key)
{
    if (!key || key[0] == '\0' || strlen(key) > 256 || s_reserved_key(key)) {
        rt_error("outbox %s: meta key \"%s\" is empty, too long or reserved", self->dir,
                 key ? key : "");
        return RT_EINVAL;
    }
    return 0;
}

int rt__outbox_get(rt_outbox_t *self, MDB_dbi dbi, const char *what, const char *key,
                   rt__outbox_get_fn fn, void *arg)
{
    MDB_txn *txn = NULL;
    int rc = rt__outbox_read_begin(self, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = rt__outbox_val(key, strlen(key)), v;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        rc = RT_ENOTFOUND;
    else if (rc)
        rc = rt__outbox_fail(self, rc, "read %s %s", what, key);
    else
        rc = fn(self, &k, &v, arg);
    rt__outbox_read_end(self);
    return rc;
}

typedef struct {
    char *buf;
    size_t size;
} s_meta_buf_t;

static int s_meta_copy(rt_outbox_t *self, const MDB_val *k, const MDB_val *v, void *arg)
{
    s_meta_buf_t *b = arg;
    if (!b->buf || v->mv_size >= b->size) {
        rt_error("outbox %s: meta %.*s has %zu bytes, more than the buffer of %zu", self->dir,
                 (int)k->mv_size, (const char *)k->mv_data, v->mv_size, b->size);
        return RT_EINVAL;
    }
    memcpy(b->buf, v->mv_data, v->mv_size);
    b->buf[v->mv_size] = '\0';
    return 0;
}

int rt_outbox_meta_get(rt_outbox_t *self, const char *key, char *buf, size_t size)
{
    int rc = s_meta_key(self, key);
    if (rc)
        return rc;
    s_meta_buf_t b = {buf, size};
    return rt__outbox_get(self, self->meta, "meta", key, s_meta_copy, &b);
}

typedef struct {
    const char *key;
    const char *value;
} s_meta_set_t;

static int s_meta_set_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    const s_meta_set_t *m = arg;
    MDB_val k = rt__outbox_val(m->key, strlen(m->key)),
            v = rt__outbox_val(m->value, strlen(m->value));
    int rc = mdb_put(txn, self->meta, &k, &v, 0);
    if (rc)
        return rt__outbox_fail(self, rc, "write meta %s", m->key);
    return 0;
}

int rt_outbox_meta_set(rt_outbox_t *self, const char *key, const char *value)
{
    int rc = s_meta_key(self, key);
    if (rc)
        return rc;
    if (!value) {
        rt_error("outbox %s: meta %s set to NULL", self->dir, key);
        return RT_EINVAL;
    }
    s_meta_set_t m = {.key = key, .value = value};
    return rt__outbox_write(self, "meta set", s_meta_set_txn, &m);
}
