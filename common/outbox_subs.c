/* common/outbox_subs.c - the outbox's subscribers: what each has acked, its state
 * and flags (enabled, resync, keep); got, put, deleted and listed (layout in
 * schemas/outbox.md). */
#include "outbox.h"

#include "log.h"

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "outbox_int.h"

#define S_SUB_VALUE_LEN 13 /* acked_seq u64 BE, state i32 BE, flags u8 */
#define S_SUB_KEEP_LEN 21  /* the same, then keep_from u64 BE */

static int s_sub_name(rt_outbox_t *self, const char *name)
{
    size_t len = name ? strnlen(name, sizeof((rt_outbox_sub_t *)0)->name) : 0;
    if (len == 0 || len >= sizeof((rt_outbox_sub_t *)0)->name) {
        rt_error("outbox %s: subscriber name empty or longer than %zu bytes", self->dir,
                 sizeof((rt_outbox_sub_t *)0)->name - 1);
        return RT_EINVAL;
    }
    return 0;
}

/* Decodes a stored subscriber; RT_EIO (logged) if the value is neither S_SUB_VALUE_LEN nor
 * S_SUB_KEEP_LEN bytes long. */
static int s_sub_decode(rt_outbox_t *self, const MDB_val *k, const MDB_val *v, rt_outbox_sub_t *sub)
{
    if (k->mv_size == 0 || k->mv_size >= sizeof sub->name ||
        (v->mv_size != S_SUB_VALUE_LEN && v->mv_size != S_SUB_KEEP_LEN)) {
        rt_error("outbox %s: malformed subscriber entry (name %zu bytes, value %zu bytes)",
                 self->dir, k->mv_size, v->mv_size);
        return RT_EIO;
    }
    const unsigned char *p = v->mv_data;
    memset(sub, 0, sizeof *sub);
    memcpy(sub->name, k->mv_data, k->mv_size);
    sub->acked_seq = rt_get_be64(p);
    sub->state =
        (int32_t)(((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11]);
    sub->enabled = (p[12] & 1) != 0;
    sub->resync = (p[12] & 2) != 0;
    sub->keep_copied = (p[12] & 4) != 0;
    if (v->mv_size == S_SUB_KEEP_LEN)
        sub->keep_from = rt_get_be64(p + 13);
    return 0;
}

static int s_sub_get_one(rt_outbox_t *self, const MDB_val *k, const MDB_val *v, void *arg)
{
    return s_sub_decode(self, k, v, arg);
}

int rt_outbox_sub_get(rt_outbox_t *self, const char *name, rt_outbox_sub_t *sub)
{
    int rc = s_sub_name(self, name);
    if (rc)
        return rc;
    return rt__outbox_get(self, self->subs, "subscriber", name, s_sub_get_one, sub);
}

static int s_sub_put_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    const rt_outbox_sub_t *sub = arg;
    unsigned char buf[S_SUB_KEEP_LEN];
    uint32_t state = (uint32_t)sub->state;
    rt_put_be64(buf, sub->acked_seq);
    buf[8] = (unsigned char)(state >> 24);
    buf[9] = (unsigned char)(state >> 16);
    buf[10] = (unsigned char)(state >> 8);
    buf[11] = (unsigned char)state;
    buf[12] = (unsigned char)((sub->enabled ? 1 : 0) | (sub->resync ? 2 : 0) |
                              (sub->keep_from && sub->keep_copied ? 4 : 0));
    rt_put_be64(buf + 13, sub->keep_from);
    /* without keep_from, the shorter layout that publishers before it read */
    MDB_val k = rt__outbox_val(sub->name, strlen(sub->name)),
            v = rt__outbox_val(buf, sub->keep_from ? S_SUB_KEEP_LEN : S_SUB_VALUE_LEN);
    int rc = mdb_put(txn, self->subs, &k, &v, 0);
    if (rc)
        return rt__outbox_fail(self, rc, "write subscriber %s", sub->name);
    return 0;
}

int rt_outbox_sub_put(rt_outbox_t *self, const rt_outbox_sub_t *sub)
{
    int rc = s_sub_name(self, sub ? sub->name : NULL);
    if (rc)
        return rc;
    return rt__outbox_write(self, "subscriber put", s_sub_put_txn, (void *)sub);
}

static int s_sub_delete_txn(rt_outbox_t *self, MDB_txn *txn, void *arg)
{
    const char *name = arg;
    MDB_val k = rt__outbox_val(name, strlen(name));
    int rc = mdb_del(txn, self->subs, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return RT_ENOTFOUND;
    if (rc)
        return rt__outbox_fail(self, rc, "delete subscriber %s", name);
    return 0;
}

int rt_outbox_sub_delete(rt_outbox_t *self, const char *name)
{
    int rc = s_sub_name(self, name);
    if (rc)
        return rc;
    return rt__outbox_write(self, "subscriber delete", s_sub_delete_txn, (void *)name);
}

int rt_outbox_sub_each(rt_outbox_t *self, rt_outbox_sub_fn fn, void *arg)
{
    if (!fn) {
        rt_error("outbox %s: subscriber walk without a callback", self->dir);
        return RT_EINVAL;
    }
    /* Copied out first, so that fn runs with no snapshot open and may write. */
    rt_outbox_sub_t *subs = NULL;
    size_t n = 0, cap = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = rt__outbox_read_begin(self, &txn);
    if (rc)
        return rc;
    rc = mdb_cursor_open(txn, self->subs, &cur);
    if (rc) {
        rc = rt__outbox_fail(self, rc, "open a cursor on subscribers");
        cur = NULL;
        goto cleanup;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            rt_outbox_sub_t *grown = realloc(subs, ncap * sizeof *subs);
            if (!grown) {
                rt_error("outbox %s: out of memory listing subscribers", self->dir);
                rc = RT_ENOMEM;
                goto cleanup;
            }
            subs = grown;
            cap = ncap;
        }
        if ((rc = s_sub_decode(self, &k, &v, &subs[n])) != 0)
            goto cleanup;
        n++;
    }
    if (rc != MDB_NOTFOUND) {
        rc = rt__outbox_fail(self, rc, "list subscribers");
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (cur)
        mdb_cursor_close(cur);
    rt__outbox_read_end(self);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(arg, &subs[i]);
    free(subs);
    return rc;
}
