/* publisher/committer.c - the outbox commit on a thread of its own, one put in flight.
 *
 * The pipe carries, one at a time:
 *   to the thread    "PUT" | rt_outbox_put_t * (the put is the thread's until it answers)
 *                    "$TERM" (zactor_destroy): the thread ends
 *   from the thread  rc of rt_outbox_put_write, as zsock_send's "i" (the put is back)
 * The caller's thread begins and ends every put (rt_outbox_put_begin/_end): the map grows
 * there, between two puts, when no transaction of the process is open. */
#include "committer.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Longest delay RT_TEST_COMMIT_DELAY_MS may ask for. */
#define MAX_TEST_DELAY_MS 60000

struct rt_committer_t {
    rt_outbox_t *outbox; /* borrowed */
    zactor_t *actor;     /* the thread */
    rt_outbox_put_t put; /* the put in flight: the thread's while busy and not answered */
    bool busy;           /* a put was handed over and its outcome not collected yet */
};

/* What the thread is started with (copied by the thread before it signals). */
typedef struct {
    rt_outbox_t *outbox; /* only rt_outbox_put_write is called on it */
    int delay_ms;        /* RT_TEST_COMMIT_DELAY_MS, 0 when unset */
} s_args_t;

static void s_actor(zsock_t *pipe, void *arg)
{
    s_args_t args = *(s_args_t *)arg;
    zsock_signal(pipe, 0);
    for (;;) {
        char *cmd = NULL;
        rt_outbox_put_t *put = NULL;
        if (zsock_recv(pipe, "sp", &cmd, &put) != 0) {
            if (zmq_errno() == EINTR)
                continue; /* a signal to the process: $TERM ends the thread */
            break;
        }
        bool term = !cmd || streq(cmd, "$TERM");
        if (!term && streq(cmd, "PUT")) {
            assert(put);
            if (args.delay_ms > 0)
                zclock_sleep(args.delay_ms); /* outside any transaction */
            int rc = rt_outbox_put_write(args.outbox, put);
            zsock_send(pipe, "i", rc);
        }
        free(cmd);
        if (term)
            break;
    }
}

/* RT_TEST_COMMIT_DELAY_MS, or 0. */
static int s_test_delay(void)
{
    const char *text = getenv("RT_TEST_COMMIT_DELAY_MS");
    if (!text || !*text)
        return 0;
    char *end;
    long ms = strtol(text, &end, 10);
    if (*end || ms < 0 || ms > MAX_TEST_DELAY_MS) {
        rt_warn("RT_TEST_COMMIT_DELAY_MS=%s is not a delay of 0..%d ms: ignored", text,
                MAX_TEST_DELAY_MS);
        return 0;
    }
    if (ms > 0)
        rt_warn("test hook RT_TEST_COMMIT_DELAY_MS: every outbox commit waits %ld ms first", ms);
    return (int)ms;
}

rt_committer_t *rt_committer_new(rt_outbox_t *outbox)
{
    rt_committer_t *self = calloc(1, sizeof *self);
    if (!self) {
        rt_error("committer: out of memory");
        return NULL;
    }
    self->outbox = outbox;
    s_args_t args = {.outbox = outbox, .delay_ms = s_test_delay()};
    self->actor = zactor_new(s_actor, &args); /* returns once the thread copied args */
    if (!self->actor) {
        rt_error("committer: cannot start its thread");
        free(self);
        return NULL;
    }
    return self;
}

void rt_committer_destroy(rt_committer_t **self_p)
{
    rt_committer_t *self = *self_p;
    if (!self)
        return;
    int result;
    if (self->busy && rt_committer_collect(self, true, &result) == RT_OK && result != RT_OK)
        rt_warn("the last outbox commit failed (%s): the source sends its records again",
                rt_strerror(result));
    zactor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}

/* Hands self->put, begun, to the thread. */
static int s_send(rt_committer_t *self)
{
    rt_outbox_put_t *put = &self->put;
    if (zsock_send(self->actor, "sp", "PUT", put) != 0) {
        rt_error("committer: cannot reach its thread: %s", zmq_strerror(zmq_errno()));
        return RT_EIO;
    }
    return RT_OK;
}

int rt_committer_submit(rt_committer_t *self, const rt_outbox_rec_t *recs, size_t n,
                        const rt_outbox_pos_t *pos)
{
    if (self->busy) {
        rt_error("committer: a put was submitted while another is in flight");
        return RT_EINVAL;
    }
    int rc = rt_outbox_put_begin(self->outbox, recs, n, pos, &self->put);
    if (rc < 0)
        return rc;
    if ((rc = s_send(self)) < 0) {
        return rt_outbox_put_end(self->outbox, &self->put, rc); /* never handed over: rc */
    }
    self->busy = true;
    return RT_OK;
}

bool rt_committer_busy(const rt_committer_t *self)
{
    return self->busy;
}

void *rt_committer_socket(rt_committer_t *self)
{
    return zactor_resolve(self->actor);
}

/* Waits until the thread's answer can be read. */
static int s_wait(rt_committer_t *self)
{
    for (;;) {
        zmq_pollitem_t item = {zactor_resolve(self->actor), 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, -1);
        if (n > 0)
            return RT_OK;
        if (n < 0 && zmq_errno() != EINTR) {
            rt_error("committer: waiting for its thread failed: %s", zmq_strerror(zmq_errno()));
            return RT_EIO;
        }
    }
}

int rt_committer_collect(rt_committer_t *self, bool wait, int *result)
{
    for (;;) {
        if (!self->busy)
            return RT_EAGAIN;
        if (wait) {
            int rc = s_wait(self);
            if (rc < 0)
                return rc;
        } else if (!(zsock_events(self->actor) & ZMQ_POLLIN)) {
            return RT_EAGAIN;
        }
        int written = RT_EIO;
        if (zsock_recv(self->actor, "i", &written) != 0) {
            rt_error("committer: cannot read its thread's answer: %s", zmq_strerror(zmq_errno()));
            return RT_EIO;
        }
        int rc = rt_outbox_put_end(self->outbox, &self->put, written);
        if (rc == RT_EAGAIN) {
            /* The map was full and has grown: the same put, written again. */
            if ((rc = s_send(self)) == RT_OK)
                continue;
            rc = rt_outbox_put_end(self->outbox, &self->put, rc); /* never handed over: rc */
        }
        self->busy = false;
        *result = rc;
        return RT_OK;
    }
}
