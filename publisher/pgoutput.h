/* publisher/pgoutput.h - pure decoder of pgoutput protocol version 1 and 2 messages (no I/O). */
#ifndef RT_PGOUTPUT_H
#define RT_PGOUTPUT_H

#include <stdio.h>

#include "rt.h"

/* A column of TupleData. */
typedef struct {
    char kind;        /* 'n' null, 'u' unchanged TOAST, 't' text, 'b' binary */
    uint32_t len;     /* 't'/'b': bytes at data */
    const char *data; /* 't'/'b': points into the message (not NUL-terminated) */
} rt_pgo_col_t;

typedef struct {
    uint16_t ncols;
    rt_pgo_col_t *cols; /* owned by the decoder */
} rt_pgo_tuple_t;

typedef struct {
    uint8_t flags;    /* 1 = part of the replica identity key */
    const char *name; /* NUL-terminated, points into the message */
    uint32_t typoid;
    int32_t typmod;
} rt_pgo_attr_t;

/* One pgoutput message. Valid until the next decode with the same decoder, and while
 * the message bytes are alive. */
typedef struct {
    char type;    /* 'B','C','O','R','Y','I','U','D','T','M'; v2: 'S','E','c','A' */
    uint32_t xid; /* v2, inside a stream block: the (sub)transaction of R,Y,I,U,D,T,M; else 0 */
    union {
        struct {
            rt_lsn_t final_lsn;
            int64_t commit_ts;
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            rt_lsn_t commit_lsn;
            rt_lsn_t end_lsn;
            int64_t commit_ts;
        } commit;
        struct {
            rt_lsn_t lsn;
            const char *name;
        } origin;
        struct {
            uint32_t relid;
            const char *nspname; /* "" means pg_catalog */
            const char *relname;
            char replident; /* 'd','n','f','i' */
            uint16_t natts;
            rt_pgo_attr_t *attrs; /* owned by the decoder */
        } relation;
        struct {
            uint32_t typoid;
            const char *nspname;
            const char *typname;
        } type;
        struct {
            uint32_t relid;
            rt_pgo_tuple_t newtup;
        } insert;
        struct {
            uint32_t relid;
            char old_kind;
            rt_pgo_tuple_t oldtup;
            rt_pgo_tuple_t newtup;
        } update; /* old_kind 'K','O' or 0 */
        struct {
            uint32_t relid;
            char old_kind;
            rt_pgo_tuple_t oldtup;
        } del; /* old_kind 'K' or 'O' */
        struct {
            uint8_t flags;
            uint32_t nrels;
            uint32_t *relids;
        } truncate; /* relids owned by the decoder */
        struct {
            uint8_t flags;
            rt_lsn_t lsn;
            const char *prefix;
            uint32_t len;
            const char *content;
        } message;
        struct {
            uint32_t xid;
            bool first;
        } stream_start;
        struct {
            uint32_t xid;
            uint8_t flags;
            rt_lsn_t commit_lsn;
            rt_lsn_t end_lsn;
            int64_t commit_ts;
        } stream_commit;
        struct {
            uint32_t xid;
            uint32_t subxid;
        } stream_abort; /* subxid == xid: the whole transaction */
    } u;
} rt_pgo_msg_t;

typedef struct rt_pgoutput_t rt_pgoutput_t;

/* A decoder keeps scratch arrays reused from message to message. */
rt_pgoutput_t *rt_pgoutput_new(void);
void rt_pgoutput_destroy(rt_pgoutput_t **self_p);

/* Decodes exactly one message of len bytes (the payload of one XLogData). Every
 * length, count, tag and string terminator is checked: RT_EPROTO if the message is
 * truncated, has trailing bytes, an unknown type or tag, or is out of place in the
 * stream blocks (S inside a block, E outside one, B, C, c or A inside one); RT_ENOMEM.
 * The decoder follows the blocks: between S and E, R, Y, I, U, D, T and M carry an
 * xid after their type byte. */
int rt_pgoutput_decode(rt_pgoutput_t *self, const char *buf, size_t len, rt_pgo_msg_t *msg) RT_WUR;

/* True between a Stream Start and its Stream Stop. */
bool rt_pgoutput_in_stream(const rt_pgoutput_t *self);

/* Writes a one-line human-readable form of msg to out, without a trailing newline (used by
 * golden tests and debug logging), e.g. "I relid=16384 new=[t:1 n u]". */
void rt_pgo_msg_print(const rt_pgo_msg_t *msg, FILE *out);

#endif
