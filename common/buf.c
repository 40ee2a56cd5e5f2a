/* common/buf.c - a growable byte buffer with a sticky allocation error, for text output. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rt_buf_init(rt_buf_t *self)
{
    memset(self, 0, sizeof *self);
}

void rt_buf_free(rt_buf_t *self)
{
    free(self->data);
    memset(self, 0, sizeof *self);
}

void rt_buf_reset(rt_buf_t *self)
{
    self->len = 0;
    self->failed = false;
    if (self->data)
        self->data[0] = '\0';
}

/* Makes room for extra more bytes plus the NUL; false (and failed set) if it cannot. */
static bool s_reserve(rt_buf_t *self, size_t extra)
{
    if (self->failed)
        return false;
    if (extra > SIZE_MAX / 2 - self->len - 1) {
        self->failed = true;
        return false;
    }
    size_t need = self->len + extra + 1;
    if (need <= self->cap)
        return true;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc(self->data, cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    self->data = data;
    self->cap = cap;
    return true;
}

void rt_buf_append(rt_buf_t *self, const void *data, size_t len)
{
    if (!s_reserve(self, len))
        return;
    if (len)
        memcpy(self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
}

void rt_buf_puts(rt_buf_t *self, const char *s)
{
    rt_buf_append(self, s, strlen(s));
}

void rt_buf_putc(rt_buf_t *self, char c)
{
    rt_buf_append(self, &c, 1);
}

void rt_buf_vprintf(rt_buf_t *self, const char *fmt, va_list ap)
{
    if (self->failed)
        return;
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        self->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        rt_buf_append(self, small, (size_t)n);
        return;
    }
    if (!s_reserve(self, (size_t)n))
        return;
    vsnprintf(self->data + self->len, (size_t)n + 1, fmt, ap);
    self->len += (size_t)n;
}

void rt_buf_printf(rt_buf_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_buf_vprintf(self, fmt, ap);
    va_end(ap);
}

void rt_buf_json_string(rt_buf_t *self, const char *s)
{
    rt_buf_putc(self, '"');
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c != '"' && c != '\\' && c >= 0x20 && c != 0x7f)
            continue;
        rt_buf_append(self, run, (size_t)(s - run));
        if (c == '"' || c == '\\') {
            rt_buf_putc(self, '\\');
            rt_buf_putc(self, (char)c);
        } else {
            rt_buf_printf(self, "\\u%04x", c);
        }
        run = s + 1;
    }
    rt_buf_append(self, run, (size_t)(s - run));
    rt_buf_putc(self, '"');
}

int rt_buf_error(const rt_buf_t *self)
{
    return self->failed ? RT_ENOMEM : RT_OK;
}

const char *rt_buf_str(const rt_buf_t *self)
{
    return self->data ? self->data : "";
}
