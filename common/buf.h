/* common/buf.h - a growable byte buffer with a sticky allocation error, for text output. */
#ifndef RT_BUF_H
#define RT_BUF_H

#include <stdarg.h>

#include "rt.h"

/* Zero-initialise ({0} or rt_buf_init) before use. Appends never fail visibly: after an
 * allocation failure the buffer keeps what it had, ignores further appends and
 * rt_buf_error() returns RT_ENOMEM. data is always NUL-terminated once non-NULL. */
typedef struct {
    char *data;  /* malloc'd bytes, NUL-terminated, or NULL while empty */
    size_t len;  /* bytes used, without the terminating NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed: the content is incomplete */
} rt_buf_t;

void rt_buf_init(rt_buf_t *self);

/* Frees the bytes and resets self to empty (it can be used again). */
void rt_buf_free(rt_buf_t *self);

/* Forgets the content but keeps the allocation and clears the error. */
void rt_buf_reset(rt_buf_t *self);

void rt_buf_append(rt_buf_t *self, const void *data, size_t len);
void rt_buf_puts(rt_buf_t *self, const char *s);
void rt_buf_putc(rt_buf_t *self, char c);
void rt_buf_printf(rt_buf_t *self, const char *fmt, ...) RT_PRINTF(2, 3);
void rt_buf_vprintf(rt_buf_t *self, const char *fmt, va_list ap) RT_PRINTF(2, 0);

/* Appends s as a JSON string literal: quotes, \" \\ and \uXXXX for control bytes. */
void rt_buf_json_string(rt_buf_t *self, const char *s);

/* 0, or RT_ENOMEM if an append failed since the last init, free or reset. */
int rt_buf_error(const rt_buf_t *self) RT_WUR;

/* The content as a C string ("" while empty); valid until the next append or free. */
const char *rt_buf_str(const rt_buf_t *self);

#endif
