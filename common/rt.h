/* common/rt.h - error codes, LSN helpers and attributes shared by every rt module. */
#ifndef RT_H
#define RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_WUR __attribute__((warn_unused_result))
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Fallible functions return 0 or one of these negative codes. */
enum {
    RT_OK = 0,
    RT_ENOMEM = -1,     /* allocation failed */
    RT_EPROTO = -2,     /* malformed input: bytes from PostgreSQL or a peer */
    RT_EIO = -3,        /* storage or socket failure */
    RT_ENOTFOUND = -4,  /* no such record, subscriber or table */
    RT_EFULL = -5,      /* outbox at its configured size limit */
    RT_EAGAIN = -6,     /* would block: try again later */
    RT_EINVAL = -7,     /* invalid argument or configuration */
    RT_ETRIMMED = -8,   /* the requested seq range was trimmed from the outbox */
    RT_EDB = -9,        /* a PostgreSQL error */
    RT_ECONFLICT = -10, /* a change did not match the replica's rows */
    RT_ERESYNC = -11    /* the replica is to be copied again (rtctl resync) */
};

/* Process exit codes of rt-publisher, rt-subscriber and rtctl. */
enum {
    RT_EXIT_OK = 0,      /* clean stop (SIGTERM/SIGINT) or command succeeded */
    RT_EXIT_FAILURE = 1, /* could not go on: storage, protocol or database failure */
    RT_EXIT_USAGE = 2,   /* bad flag, config file or value */
    RT_EXIT_RESYNC = 3   /* subscriber: the records it needs were trimmed; resync the replica */
};

/* Returns a static description of an RT_E* code. */
const char *rt_strerror(int err);

/* "VERSION (git REVISION)": the release in the file VERSION and the commit built
 * (common/version.cmake). */
extern const char *const rt_version_text;

/* A PostgreSQL WAL position. */
typedef uint64_t rt_lsn_t;

/* Formats an LSN as PostgreSQL does ("16/B374D848") into buf (>= 20 bytes); returns buf. */
char *rt_lsn_format(rt_lsn_t lsn, char *buf, size_t size);

/* Parses "X/Y" into *lsn; RT_EINVAL if malformed. */
int rt_lsn_parse(const char *text, rt_lsn_t *lsn) RT_WUR;

/* Microseconds since the PostgreSQL epoch (2000-01-01 UTC) for now. */
int64_t rt_pg_now_us(void);

/* Converts PostgreSQL-epoch microseconds to Unix-epoch microseconds. */
int64_t rt_pg_to_unix_us(int64_t pg_us);

/* Monotonic clock in milliseconds. */
int64_t rt_mono_ms(void);

/* Grows *arr (realloc, contents kept) to hold at least n elements of elem bytes,
 * doubling from 16; RT_OK, or RT_ENOMEM leaving *arr and *cap as they were. */
int rt_reserve(void **arr, size_t *cap, size_t n, size_t elem) RT_WUR;

/* A name that can be a subscriber's, a certificate's and a file's: 1 to 63 characters
 * of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool rt_name_ok(const char *name);

/* Big-endian helpers. */
static inline void rt_put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t rt_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
