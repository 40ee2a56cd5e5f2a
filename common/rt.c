/* common/rt.c - error strings, LSN text form, clocks and names. */
#include "rt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *rt_strerror(int err)
{
    switch (err) {
    case RT_OK: return "success";
    case RT_ENOMEM: return "out of memory";
    case RT_EPROTO: return "malformed input";
    case RT_EIO: return "storage or socket failure";
    case RT_ENOTFOUND: return "not found";
    case RT_EFULL: return "outbox full";
    case RT_EAGAIN: return "try again";
    case RT_EINVAL: return "invalid argument";
    case RT_ETRIMMED: return "range trimmed from the outbox";
    case RT_EDB: return "database error";
    case RT_ECONFLICT: return "conflict";
    case RT_ERESYNC: return "resync requested";
    default: return "unknown error";
    }
}

char *rt_lsn_format(rt_lsn_t lsn, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return buf;
}

int rt_lsn_parse(const char *text, rt_lsn_t *lsn)
{
    unsigned int hi, lo;
    int used = 0;
    if (!text || sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used] != '\0')
        return RT_EINVAL;
    *lsn = ((uint64_t)hi << 32) | lo;
    return RT_OK;
}

/* Seconds between 1970-01-01 and 2000-01-01. */
#define PG_EPOCH_OFFSET_S 946684800LL

int64_t rt_pg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((int64_t)ts.tv_sec - PG_EPOCH_OFFSET_S) * 1000000LL + ts.tv_nsec / 1000;
}

int64_t rt_pg_to_unix_us(int64_t pg_us)
{
    return pg_us + PG_EPOCH_OFFSET_S * 1000000LL;
}

int64_t rt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rt_reserve(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return RT_OK;
    size_t newcap = *cap ? *cap : 16;
    while (newcap < n)
        newcap *= 2;
    void *grown = realloc(*arr, newcap * elem);
    if (!grown)
        return RT_ENOMEM;
    *arr = grown;
    *cap = newcap;
    return RT_OK;
}

bool rt_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63 || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}
