/* publisher/blocks.c - the blocks of a transaction streamed before its commit (STREAM):
 * its row changes, as spool.c reads them, built into blocks of one subtransaction each and
 * published at once, for subscribers that apply them before the commit. A block is built
 * like a record (capture.c's change builder, with the relation descriptors of the block);
 * the transaction's records are still built at its commit, from the spool. */
#include <stdbool.h>
#include <stdint.h>

#include "capture_int.h"
#include "wire.h"

/* A block's encoded changes past this are not published: the frame must stay under
 * RT_WIRE_MAX_FRAME with its header. */
#define S_BLOCK_MAX_BYTES (RT_WIRE_MAX_FRAME / 4)

int rt_capture_block_cut(rt_capture_t *self, uint64_t *blocks)
{
    if (!self->blk.building)
        return RT_OK;
    self->blk.building = false;
    const void *data;
    size_t len;
    uint64_t n = *blocks + 1;
    int rc = rt_record_builder_finish(self->blk.builder, n == 1 ? RT_REC_FIRST : 0, 0, &data, &len);
    if (rc < 0)
        return rc;
    rt_msg_t b = {.type = RT_MSG_STREAM,
                  .head_seq = self->next_seq - 1,
                  .xid = self->blk.xid,
                  .subxid = self->blk.subxid,
                  .seq = n,
                  .data = (void *)data,
                  .datalen = len};
    self->opts.stream(self->opts.publish_arg, &b);
    *blocks = n;
    return RT_OK;
}

void rt_capture_block_drop(rt_capture_t *self)
{
    self->blk.building = false;
}

int rt_capture_block_add(rt_capture_t *self, uint32_t xid, uint32_t subxid, const rt_pgo_msg_t *m,
                         uint64_t *blocks, bool *unfit)
{
    *unfit = false;
    if (!self->opts.stream)
        return RT_OK;
    if (m->type == 'T' || rt_capture_is_ddl(self, m)) {
        *unfit = true; /* applied after the commit, where they are handled */
        rt_capture_block_drop(self);
        return RT_OK;
    }
    if (rt_capture_own_change(self, m))
        return RT_OK;
    int rc;
    if (self->blk.building && self->blk.subxid != subxid &&
        (rc = rt_capture_block_cut(self, blocks)) < 0)
        return rc;
    if (!self->blk.building) {
        self->blk.epoch++;
        rt_record_builder_start(self->blk.builder, *blocks + 1, xid, 0, 0, NULL);
        self->blk.building = true;
        self->blk.xid = xid;
        self->blk.subxid = subxid;
    }
    if ((rc = rt_capture_build_change(self, true, self->blk.builder, m)) < 0)
        return rc;
    size_t size = rt_record_builder_size(self->blk.builder);
    if (size > S_BLOCK_MAX_BYTES) {
        *unfit = true;
        rt_capture_block_drop(self);
        return RT_OK;
    }
    return size >= RT_RECORD_TARGET_BYTES ? rt_capture_block_cut(self, blocks) : RT_OK;
}
