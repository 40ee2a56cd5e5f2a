/* subscriber/fetch_window.c - the FETCH credit (fetch_window.h). */
#include "fetch_window.h"

#include <string.h>

void rt_fetch_window_forget(rt_fetch_window_t *w)
{
    w->n = 0;
    w->unanswered = 0;
}

void rt_fetch_window_reset(rt_fetch_window_t *w)
{
    rt_fetch_window_forget(w);
    w->not_before_ms = 0;
}

void rt_fetch_window_record(rt_fetch_window_t *w, size_t len, int64_t now)
{
    if (len > w->rec_max)
        w->rec_max = len;
    if (w->n > 0)
        w->sent_ms = now;
    w->unanswered = 0;
}

bool rt_fetch_window_overdue(rt_fetch_window_t *w, int64_t now)
{
    if (w->n == 0 || now - w->sent_ms < RT_FETCH_RETRY_MS)
        return false;
    w->n = 0;
    w->unanswered++;
    return true;
}

/* Records to ask for in one FETCH: as many as fit the reply's byte limit at the size
 * of the largest recent record. */
static uint32_t s_count(const rt_fetch_window_t *w)
{
    size_t largest = w->rec_max > w->rec_max_prev ? w->rec_max : w->rec_max_prev;
    if (largest == 0 || largest * RT_FETCH_COUNT <= RT_FETCH_BYTES)
        return RT_FETCH_COUNT;
    size_t n = RT_FETCH_BYTES / largest;
    return n < 1 ? 1 : (uint32_t)n;
}

bool rt_fetch_window_next(rt_fetch_window_t *w, uint64_t next, uint64_t head, int64_t now,
                          uint64_t *from, uint32_t *count)
{
    uint64_t f = next;
    if (w->n > 0) {
        f = w->out[w->n - 1].from + w->out[w->n - 1].count;
        if (f < next)
            f = next;
    } else if (now < w->not_before_ms) {
        return false;
    }
    if (w->n >= RT_FETCH_CREDIT || head < f)
        return false;
    uint32_t c = s_count(w);
    if (w->n == 0)
        w->sent_ms = now;
    w->out[w->n].from = f;
    w->out[w->n].count = c;
    w->n++;
    *from = f;
    *count = c;
    return true;
}

bool rt_fetch_window_answered(rt_fetch_window_t *w, uint64_t from, uint64_t last, uint64_t head,
                              bool wait_empty, int64_t now)
{
    if (w->n == 0 || from != w->out[0].from)
        return false;
    uint64_t end = from + w->out[0].count; /* first seq not asked */
    w->unanswered = 0;
    w->n--;
    memmove(&w->out[0], &w->out[1], (size_t)w->n * sizeof w->out[0]);
    w->sent_ms = now;
    w->rec_max_prev = w->rec_max;
    w->rec_max = 0;
    if (last < from) {
        w->n = 0;
        /* Paused; or, from a publisher that stored less than it published, not stored
         * yet: its next HUGZ says when it is. */
        if (head >= from || wait_empty)
            w->not_before_ms = now + RT_FETCH_EMPTY_MS;
    } else if (last + 1 < end && last < head) {
        w->n = 0; /* a short reply: the later ranges start past a gap; ask again from it */
    }
    return true;
}
