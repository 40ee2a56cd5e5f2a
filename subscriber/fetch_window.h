/* subscriber/fetch_window.h - the FETCH credit a subscriber keeps (schemas/protocol.md,
 * "Subscriber life", step 4): up to RT_FETCH_CREDIT FETCHes of consecutive ranges out at
 * once, each sized so that its reply fits RT_FETCH_BYTES at the largest recent record,
 * matched to FETCHED answers oldest first, forgotten when one stays unanswered.
 *
 * Shared by rt-subscriber's link, rt-relay's upstream and the simulated subscriber: the
 * window only decides what to ask and when; the caller sends the FETCH and takes the
 * records. */
#ifndef RT_FETCH_WINDOW_H
#define RT_FETCH_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_FETCH_COUNT 256                /* most records asked per FETCH */
#define RT_FETCH_CREDIT 3                 /* FETCHes outstanding at once */
#define RT_FETCH_BYTES (7u * 1024 * 1024) /* a reply's records should fit this */
#define RT_FETCH_RETRY_MS 5000            /* an unanswered FETCH is forgotten and asked again */
#define RT_FETCH_EMPTY_MS 1000            /* after an empty answer, wait this long */
#define RT_FETCH_UNANSWERED_MAX                                                                    \
    2 /* FETCHes unanswered in a row: the connection is                                            \
       * made again (rt_client_silence) */

typedef struct {
    struct {
        uint64_t from;
        uint32_t count;
    } out[RT_FETCH_CREDIT]; /* outstanding FETCHes, oldest first */
    int n;                  /* how many */
    int64_t sent_ms;        /* when the oldest was sent, or last answered with a record */
    int64_t not_before_ms;  /* after an empty answer: no FETCH before this */
    size_t rec_max;         /* largest record received in this reply */
    size_t rec_max_prev;    /* and in the previous one */
    int unanswered;         /* times in a row the oldest FETCH went unanswered */
} rt_fetch_window_t;

/* Forgets every outstanding FETCH (a reconnection, a rollback, a pause). */
void rt_fetch_window_forget(rt_fetch_window_t *w);

/* Forgets them and clears the wait after an empty answer (a resume, a new WELCOME). */
void rt_fetch_window_reset(rt_fetch_window_t *w);

/* A record of len bytes arrived as part of an answer at now: the oldest FETCH is being
 * answered (its retry clock restarts). */
void rt_fetch_window_record(rt_fetch_window_t *w, size_t len, int64_t now);

/* True (and the window forgotten, unanswered counted) when the oldest FETCH has been
 * unanswered for RT_FETCH_RETRY_MS: the caller logs it and asks again. An answer or a
 * record of one, or forgetting the window, sets the count back to 0. */
bool rt_fetch_window_overdue(rt_fetch_window_t *w, int64_t now);

/* The next FETCH to send now, for a subscriber whose next record to take is next and
 * which knows the publisher stored up to head: true with *from and *count (the range is
 * noted as outstanding), false when nothing is to be asked (credit spent, nothing
 * stored past what is asked, or waiting after an empty answer). Call until false. */
bool rt_fetch_window_next(rt_fetch_window_t *w, uint64_t next, uint64_t head, int64_t now,
                          uint64_t *from, uint32_t *count);

/* A FETCHED{from, last, head} arrived at now. When it answers the oldest outstanding
 * FETCH, that one is done; an empty answer (last < from) forgets them all and, when
 * head says the range was stored or wait_empty is set, waits RT_FETCH_EMPTY_MS; a short
 * answer before the head forgets the later ones (their ranges start past a gap).
 * Returns false when it answers none (a FETCH forgotten). */
bool rt_fetch_window_answered(rt_fetch_window_t *w, uint64_t from, uint64_t last, uint64_t head,
                              bool wait_empty, int64_t now);

/* True while FETCHes are outstanding. */
static inline bool rt_fetch_window_busy(const rt_fetch_window_t *w)
{
    return w->n > 0;
}

#endif
