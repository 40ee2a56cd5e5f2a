/* common/wire_int.h - what the parts of the MessagePack codec share: unpacking a frame,
 * the read cursor and the packer (wire.c), the copy progress (wire_status.c). Used by
 * wire_record.c (records), wire_msg.c (control messages) and wire_status.c
 * (STATUS_REPLY); everyone else includes wire.h only. */
#ifndef RT_WIRE_INT_H
#define RT_WIRE_INT_H

#include <msgpack.h>

#include "wire.h"

/* Longest string field (names, origin, texts) either side writes or accepts. */
#define RT__WIRE_MAX_STR 4096u

/* Unpacks a pre-validated frame that must be consumed whole: RT_OK, RT_EPROTO, RT_ENOMEM. */
int rt__wire_unpack(msgpack_unpacked *u, const void *frame, size_t len) RT_WUR;

/* ---------------------------------------------------------------------------------
 * Reading an unpacked array: a cursor with a sticky error flag. After any mismatch
 * every read returns a zero value and bad stays set. */

typedef struct {
    const msgpack_object *items; /* the array's elements */
    uint32_t n;                  /* number of elements */
    uint32_t i;                  /* next element */
    bool bad;                    /* a read failed */
} rt__wire_cursor_t;

/* Opens o as an array of exactly want elements (any size if want is UINT32_MAX). */
void rt__wire_open(rt__wire_cursor_t *c, const msgpack_object *o, uint32_t want);
/* The next element (a nil past the end, setting bad). */
const msgpack_object *rt__wire_next(rt__wire_cursor_t *c);
/* Opens the next element as a sub-cursor; a failure marks both. */
void rt__wire_sub(rt__wire_cursor_t *c, rt__wire_cursor_t *sub, uint32_t want);
/* Reads a uint of at most max. */
uint64_t rt__wire_uint(rt__wire_cursor_t *c, uint64_t max);
/* Reads an int between min and max. */
int64_t rt__wire_int(rt__wire_cursor_t *c, int64_t min, int64_t max);
/* Reads a bool. */
bool rt__wire_bool(rt__wire_cursor_t *c);
/* Reads a str field; *ptr and *len point into the frame (not NUL-terminated). */
void rt__wire_str(rt__wire_cursor_t *c, const char **ptr, uint32_t *len);
/* Reads the type tag and checks it is tag, then the version. */
void rt__wire_header(rt__wire_cursor_t *c, const char *tag, uint64_t version);
/* A text value: a bin with a terminating NUL and none inside. */
bool rt__wire_is_text(const msgpack_object *o);

/* ---------------------------------------------------------------------------------
 * Packing helpers: every pack call goes through a packer with a sticky error. */

typedef struct {
    msgpack_packer pk; /* writes to buf */
    int err;           /* first failure, or 0 */
} rt__wire_packer_t;

#define RT__WIRE_PACK(sp, call)                                                                    \
    do {                                                                                           \
        if ((sp)->err == RT_OK && (call) != 0)                                                     \
            (sp)->err = RT_ENOMEM;                                                                 \
    } while (0)

/* Packs a C string of at most RT__WIRE_MAX_STR bytes (NULL packs as ""). */
void rt__wire_pack_cstr(rt__wire_packer_t *sp, const char *s);
/* Packs the array header of a frame of nfields fields, its type tag and version. */
void rt__wire_pack_header(rt__wire_packer_t *sp, const char *tag, uint8_t version, size_t nfields);
/* Hands a packed buffer of at most max bytes over to the caller, or frees it on error:
 * RT_OK with *frame (malloc'd, the caller's) and *len, err, or RT_EINVAL if too large. */
int rt__wire_release(msgpack_sbuffer *sb, int err, size_t max, void **frame, size_t *len) RT_WUR;

/* ---------------------------------------------------------------------------------
 * Copy progress, [6 uints]: in SYNC_KEEP and in each subscriber of a STATUS_REPLY. */

void rt__wire_progress_pack(rt__wire_packer_t *sp, const rt_copy_progress_t *p);
/* Reads it (bad, too, if tables_done > tables_total). */
void rt__wire_progress_decode(rt__wire_cursor_t *c, rt_copy_progress_t *p);

#endif
