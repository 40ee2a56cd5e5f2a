/* rtctl/ctl.h - what rtctl's command families share: global options, the request helper,
 * and one entry point per command. */
#ifndef RT_CTL_H
#define RT_CTL_H

#include <czmq.h>
#include <stdio.h>

#include "rt.h"
#include "wire.h"

#define RT_CTL_DEFAULT_ENDPOINT "tcp://127.0.0.1:7470"
#define RT_CTL_DEFAULT_TIMEOUT_MS 5000

/* Options given before the command word. */
typedef struct {
    const char *endpoint;      /* the publisher's ROUTER */
    int timeout_ms;            /* how long to wait for an answer */
    zcert_t *cert;             /* CURVE: rtctl's key pair (--cert), or NULL */
    const char *publisher_key; /* with cert: the publisher's public key, Z85 */
    /* status of several publishers (a mesh): every --publisher given, in order, and with
     * cert each one's key (--publisher-key given as often); endpoint and publisher_key
     * are the first's. */
    int nendpoints;
    const char *const *endpoints;
    const char *const *publisher_keys;
} rt_ctl_t;

/* The most --publisher options rtctl takes (status of a mesh). */
#define RT_CTL_MAX_PUBLISHERS 16

/* A command: argv[0] is the command word; returns an RT_EXIT_* code. Every command
 * prints what went wrong to stderr, naming the argument or the peer. */
typedef int (*rt_ctl_cmd_fn)(const rt_ctl_t *g, int argc, char **argv);

/* Sends msg to the publisher and returns its reply (malloc'd, the caller frees) in
 * *reply / *len. An ERROR reply is printed ("rtctl: the publisher answered: ...") and
 * freed. Returns RT_EXIT_OK, or RT_EXIT_FAILURE after printing why. */
int rt_ctl_call(const rt_ctl_t *g, const rt_msg_t *msg, void **reply, size_t *len);

/* Sends msg and expects OK{text}, printed to stdout. RT_EXIT_OK or RT_EXIT_FAILURE. */
int rt_ctl_call_ok(const rt_ctl_t *g, const rt_msg_t *msg);

/* Replaces every control byte of s (may be NULL) with '?', in place: names and texts
 * come from peers, and an escape sequence must not reach the operator's terminal. */
void rt_ctl_printable(char *s);

/* rt_ctl_printable on every text of a decoded status. */
void rt_ctl_status_printable(rt_status_t *st);

/* Asks for STATUS and decodes it into *st (texts made printable) (rt_status_clear it). RT_EXIT_*
 * code. */
int rt_ctl_status_fetch(const rt_ctl_t *g, rt_status_t *st);

/* Prints "Usage: rtctl ... <usage of word>" and its help to out (from the command table). */
void rt_ctl_command_usage(FILE *out, const char *word);

/* Parses an unsigned decimal argument of option opt of command cmd; prints the error
 * and returns false when it is not one. */
bool rt_ctl_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t *v);

/* Formats helpers for the text views (buf returned). */
const char *rt_ctl_bytes(uint64_t bytes, char *buf, size_t size); /* "1.2 MiB" */
const char *rt_ctl_ms(int64_t ms, char *buf, size_t size);        /* "1.2 s", "-" if < 0 */
/* The slot's figures on the source, "-" where unknown:
 * "retained WAL 12.3 MiB, source lag 1.2 MiB, 0.35 s". */
const char *rt_ctl_slot_line(const rt_status_t *st, char *buf, size_t size);
/* The outbox's size limit: " (limit 8.0 MiB)", " (no limit)", or "" when unknown (an older
 * publisher). */
const char *rt_ctl_limit(const rt_status_t *st, char *buf, size_t size);
/* "initial copy: 3 of 10 tables, 120000 rows, 340.0 MiB of ~1.1 GiB (45.0 MiB/s), ~20.0 s
 * left" for a subscriber that is copying; NULL when none runs. */
const char *rt_ctl_copy_line(const rt_copy_progress_t *p, char *buf, size_t size);
const char *rt_ctl_pg_time(int64_t pg_us, char *buf,
                           size_t size); /* "2024-01-02 03:04:05.678 UTC" */

/* The lag of a subscriber in records (0 when it is at or past head). */
uint64_t rt_ctl_lag_records(const rt_status_t *st, const rt_status_sub_t *sub);

/* The publisher's capture state as a word. */

/* Commands (rtctl/status.c, admin.c, replay.c, top.c, outbox.c). */
int rt_ctl_cmd_status(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_ping(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_pause(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_resume(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_forget(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_resync(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_skip(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_replay(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_top(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_outbox(const rt_ctl_t *g, int argc, char **argv);
int rt_ctl_cmd_keygen(const rt_ctl_t *g, int argc, char **argv);

#endif
