/* publisher/sync.c - initial copy sessions: the event loop's side, and the channel from
 * the sessions' threads back to it.
 *
 * Each session is a thread (sync_session.c) that sends what subscribers must get through
 * the channel, a PULL socket here that rt_sync_pump empties into the ROUTER. Nothing
 * here waits for a thread: a session is dropped by sending its thread "$TERM" and
 * forgetting it once its pipe turns readable (the thread's end signal, czmq's), so a
 * thread still connecting or cancelling never holds up the loop. Only rt_sync_destroy
 * waits, at shutdown. */
#include "sync.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sock.h"
#include "sync_int.h"

#define MAX_FORWARDS_PER_CALL 256
/* A thread waits this long at most for room in the channel. */
#define PUSH_TIMEOUT_MS 5000

/* A session, as the event loop knows it. */
typedef struct {
    uint64_t id;      /* sync id; 0 for a free entry */
    char name[64];    /* the subscriber's name */
    zactor_t *actor;  /* its thread */
    int64_t heard_ms; /* last SYNC_READY sent, SYNC_KEEP or COPY (monotonic) */
    bool ready;       /* SYNC_READY was sent: the timeout runs (creating the slot may
                       * wait for long transactions, and the subscriber cannot keep the
                       * session before it knows its id) */
    bool ending;      /* dropped: $TERM sent, waiting for its thread to end */
} s_session_t;

struct rt_sync_t {
    char *dsn, *publication;
    char *pg_dump;     /* NULL: looked for when needed */
    char endpoint[64]; /* the channel's inproc endpoint */
    zsock_t *pull;     /* the channel */
    int64_t timeout_ms;
    uint64_t part_bytes;
    s_session_t sessions[RT_SYNC_MAX_SESSIONS];
    uint64_t next_id; /* the next session's sync id */
    uint64_t started; /* sessions started, numbering their slots */
    uint64_t dropped; /* frames dropped: their peer was gone or full */
};

rt_sync_t *rt_sync_new(const rt_sync_opts_t *opts)
{
    rt_sync_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dsn = strdup(opts->dsn);
    self->publication = strdup(opts->publication);
    if (!self->dsn || !self->publication)
        goto fail;
    if (opts->pg_dump && !(self->pg_dump = strdup(opts->pg_dump)))
        goto fail;
    rt_sync_set_timeout(self, opts->timeout_s);
    self->part_bytes = opts->part_bytes ? opts->part_bytes : RT_SYNC_PART_BYTES;
    /* Ids start at the milliseconds since the epoch: a session id of an earlier run does not
     * name a session of this one. */
    self->next_id = (uint64_t)zclock_time();
    snprintf(self->endpoint, sizeof self->endpoint, "inproc://rt-sync-%p", (void *)self);
    rt_sock_opts_t po = {.type = ZMQ_PULL,
                         .endpoint = self->endpoint,
                         .bind = true,
                         .what = "initial copy channel",
                         .max_in = RT_WIRE_MAX_RECORD};
    if (!(self->pull = rt_sock_new(&po)))
        goto fail;
    return self;
fail:
    rt_sync_destroy(&self);
    return NULL;
}

static s_session_t *s_find(rt_sync_t *self, uint64_t id, const char *name)
{
    for (size_t i = 0; i < RT_SYNC_MAX_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        if (s->id && s->id == id && !s->ending && strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

static int s_not_found(uint64_t id, char *err, size_t err_size)
{
    snprintf(err, err_size,
             "no copy session %llu (the publisher restarted or dropped it): start the copy "
             "again",
             (unsigned long long)id);
    return RT_ENOTFOUND;
}

/* Drops a session: logs why, once, and asks its thread to end without waiting for it. */
static void s_drop(s_session_t *s, const char *why)
{
    if (s->ending)
        return;
    rt_info("copy session %llu of subscriber %s ended: %s", (unsigned long long)s->id, s->name,
            why);
    s->ending = true;
    zstr_send(s->actor, "$TERM"); /* never blocks: the pipe's send timeout is 0 */
}

/* Forgets a session whose thread ended; zactor_destroy then only collects its signal. */
static void s_reap(s_session_t *s)
{
    if (!s->ending)
        rt_info("copy session %llu of subscriber %s ended: its thread stopped",
                (unsigned long long)s->id, s->name);
    zactor_destroy(&s->actor);
    memset(s, 0, sizeof *s);
}

void rt_sync_destroy(rt_sync_t **self_p)
{
    rt_sync_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < RT_SYNC_MAX_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        if (!s->id)
            continue;
        s_drop(s, "the publisher stops");
        s_reap(s); /* waits for the thread */
    }
    zsock_destroy(&self->pull);
    free(self->dsn);
    free(self->pg_dump);
    free(self->publication);
    free(self);
    *self_p = NULL;
}

void *rt_sync_socket(rt_sync_t *self)
{
    return zsock_resolve(self->pull);
}

void rt_sync_set_timeout(rt_sync_t *self, int64_t seconds)
{
    self->timeout_ms = (seconds > 0 ? seconds : RT_SYNC_TIMEOUT_S) * 1000;
}

void rt_sync_session_args_free(rt_sync_session_args_t *a)
{
    if (!a)
        return;
    free(a->name);
    free(a->id);
    free(a->dsn);
    free(a->publication);
    free(a->slot);
    free(a->endpoint);
    free(a->pg_dump);
    free(a);
}

static char *s_memdup(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

int rt_sync_start(rt_sync_t *self, const char *name, const char *id, size_t idlen,
                  uint64_t start_seq, uint64_t jobs, uint64_t *sync_id, char *err, size_t err_size)
{
    s_session_t *free_entry = NULL;
    for (size_t i = 0; i < RT_SYNC_MAX_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        if (s->id && !s->ending && strcmp(s->name, name) == 0)
            s_drop(s, "the subscriber started a new copy");
        if (!s->id && !free_entry)
            free_entry = s;
    }
    if (!free_entry) {
        snprintf(err, err_size,
                 "the publisher runs %d copy sessions already, its most: try again later",
                 RT_SYNC_MAX_SESSIONS);
        return RT_EAGAIN;
    }
    rt_sync_session_args_t *a = calloc(1, sizeof *a);
    char slot[64];
    snprintf(slot, sizeof slot, "rt_sync_%ld_%llu", (long)getpid(),
             (unsigned long long)self->started + 1);
    if (a) {
        a->sync_id = self->next_id;
        a->name = strdup(name);
        a->id = s_memdup(id, idlen);
        a->idlen = idlen;
        a->start_seq = start_seq;
        a->jobs = jobs < RT_SYNC_MAX_JOBS ? jobs : RT_SYNC_MAX_JOBS;
        a->part_bytes = self->part_bytes;
        a->dsn = strdup(self->dsn);
        a->publication = strdup(self->publication);
        a->slot = strdup(slot);
        a->endpoint = strdup(self->endpoint);
        a->pg_dump = self->pg_dump ? strdup(self->pg_dump) : NULL;
    }
    zactor_t *actor = NULL;
    if (a && a->name && a->id && a->dsn && a->publication && a->slot && a->endpoint &&
        (a->pg_dump || !self->pg_dump))
        actor = zactor_new(rt_sync_session_actor, a); /* the thread owns a from here */
    if (!actor) {
        rt_sync_session_args_free(a);
        snprintf(err, err_size, "the publisher is out of memory");
        return RT_ENOMEM;
    }
    zsock_set_sndtimeo(zactor_sock(actor), 0);
    s_session_t *s = free_entry;
    s->id = self->next_id++;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->actor = actor;
    s->heard_ms = rt_mono_ms();
    self->started++;
    *sync_id = s->id;
    return RT_OK;
}

int rt_sync_copy(rt_sync_t *self, const char *id, size_t idlen, const rt_msg_t *m, char *err,
                 size_t err_size)
{
    s_session_t *s = s_find(self, m->sync_id, m->name);
    if (!s)
        return s_not_found(m->sync_id, err, err_size);
    s->heard_ms = rt_mono_ms();
    if (m->flags & ~(uint64_t)RT_COPY_FLAGS) {
        snprintf(err, err_size, "COPY flags 0x%llx: only 0x%x are defined",
                 (unsigned long long)m->flags, RT_COPY_FLAGS);
        return RT_EINVAL;
    }
    zmsg_t *cmd = zmsg_new();
    if (!cmd) {
        snprintf(err, err_size, "the publisher is out of memory");
        return RT_ENOMEM;
    }
    zmsg_addstr(cmd, "COPY");
    zmsg_addmem(cmd, id, idlen);
    zmsg_addmem(cmd, &m->table, sizeof m->table);
    zmsg_addmem(cmd, &m->count, sizeof m->count);
    zmsg_addmem(cmd, &m->flags, sizeof m->flags);
    if (zmsg_send(&cmd, s->actor) < 0) {
        zmsg_destroy(&cmd);
        snprintf(err, err_size, "copy session %llu is busy: try again", (unsigned long long)s->id);
        return RT_EAGAIN;
    }
    return RT_OK;
}

int rt_sync_schema(rt_sync_t *self, const char *id, size_t idlen, const rt_msg_t *m, char *err,
                   size_t err_size)
{
    s_session_t *s = s_find(self, m->sync_id, m->name);
    if (!s)
        return s_not_found(m->sync_id, err, err_size);
    s->heard_ms = rt_mono_ms();
    /* "SCHEMA" | routing id | schema | table | schema | table ... */
    zmsg_t *cmd = zmsg_new();
    int rc = cmd ? zmsg_addstr(cmd, "SCHEMA") : -1;
    if (rc == 0)
        rc = zmsg_addmem(cmd, id, idlen);
    for (size_t i = 0; i < m->nddl && rc == 0; i++)
        if ((rc = zmsg_addstr(cmd, m->ddl[i].schema)) == 0)
            rc = zmsg_addstr(cmd, m->ddl[i].table);
    if (rc != 0) {
        zmsg_destroy(&cmd);
        snprintf(err, err_size, "the publisher is out of memory");
        return RT_ENOMEM;
    }
    if (zmsg_send(&cmd, s->actor) < 0) {
        zmsg_destroy(&cmd);
        snprintf(err, err_size, "copy session %llu is busy: try again", (unsigned long long)s->id);
        return RT_EAGAIN;
    }
    return RT_OK;
}

int rt_sync_keep(rt_sync_t *self, const char *name, uint64_t sync_id, char *err, size_t err_size)
{
    s_session_t *s = s_find(self, sync_id, name);
    if (!s)
        return s_not_found(sync_id, err, err_size);
    s->heard_ms = rt_mono_ms();
    return RT_OK;
}

int rt_sync_end(rt_sync_t *self, const char *name, uint64_t sync_id, char *err, size_t err_size)
{
    s_session_t *s = s_find(self, sync_id, name);
    if (!s)
        return s_not_found(sync_id, err, err_size);
    s_drop(s, "done (SYNC_END)");
    return RT_OK;
}

/* Receives one message of the channel into parts (at most S_MAX_PARTS; the parts beyond
 * are dropped). Returns how many parts it has, 0 when the channel is empty. */
#define S_MAX_PARTS 3
static int s_recv_message(void *pull, zmq_msg_t parts[S_MAX_PARTS])
{
    int n = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return n; /* parts of one message come together: only at its start */
        }
        bool more = zmq_msg_more(&part);
        if (n < S_MAX_PARTS)
            zmq_msg_move(&parts[n++], &part);
        zmq_msg_close(&part);
        if (!more)
            return n;
    }
}

/* "R" or "E" | sync id: the session is ready, or failed. */
static void s_on_note(rt_sync_t *self, char note, zmq_msg_t *idpart)
{
    uint64_t id;
    if (zmq_msg_size(idpart) != sizeof id)
        return;
    memcpy(&id, zmq_msg_data(idpart), sizeof id);
    for (size_t i = 0; i < RT_SYNC_MAX_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        if (s->id != id)
            continue;
        if (note == RT_SYNC_NOTE_FAILED) {
            s_drop(s, "error");
        } else if (note == RT_SYNC_NOTE_READY) {
            s->ready = true;
            s->heard_ms = rt_mono_ms();
        }
    }
}

/* "F" | routing id | frame: sent on as [routing id][frame], the frame not copied. */
static void s_on_frame(rt_sync_t *self, void *router, zmq_msg_t *id, zmq_msg_t *frame)
{
    if (zmq_msg_send(id, router, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        zmq_msg_send(frame, router, ZMQ_DONTWAIT) >= 0)
        return;
    /* The peer is gone or full: it finds out by the rows missing (COPY_DONE counts them)
     * or by its credit not coming back. */
    self->dropped++;
    rt_debug("copy frame for %.*s dropped: %s (%llu dropped so far)",
             (int)(zmq_msg_size(id) < 64 ? zmq_msg_size(id) : 64), (const char *)zmq_msg_data(id),
             zmq_strerror(zmq_errno()), (unsigned long long)self->dropped);
}

/* Forwards up to MAX_FORWARDS_PER_CALL messages of the channel; true when it is empty. */
static bool s_forward(rt_sync_t *self, void *router)
{
    void *pull = zsock_resolve(self->pull);
    for (int i = 0; i < MAX_FORWARDS_PER_CALL; i++) {
        zmq_msg_t parts[S_MAX_PARTS];
        for (int k = 0; k < S_MAX_PARTS; k++)
            zmq_msg_init(&parts[k]);
        int n = s_recv_message(pull, parts);
        const char *kind = zmq_msg_data(&parts[0]);
        if (n == 3 && zmq_msg_size(&parts[0]) == 1 && kind[0] == 'F')
            s_on_frame(self, router, &parts[1], &parts[2]);
        else if (n == 2 && zmq_msg_size(&parts[0]) == 1)
            s_on_note(self, kind[0], &parts[1]);
        for (int k = 0; k < S_MAX_PARTS; k++)
            zmq_msg_close(&parts[k]);
        if (n == 0)
            return true;
    }
    return false;
}

void rt_sync_pump(rt_sync_t *self, void *router)
{
    /* Threads that ended: noted before the channel is emptied, since whatever a thread
     * sent is in the channel before its end signal is in its pipe (its notes included). */
    bool ended[RT_SYNC_MAX_SESSIONS];
    for (size_t i = 0; i < RT_SYNC_MAX_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        ended[i] = s->id && (zsock_events(zactor_sock(s->actor)) & ZMQ_POLLIN);
    }
    bool drained = s_forward(self, router);
    int64_t now = rt_mono_ms();
    for (size_t i = 0; i < RT_SYNC_MAX_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        if (!s->id)
            continue;
        if (ended[i] && (s->ending || drained)) {
            s_reap(s);
            continue;
        }
        if (s->ready && !s->ending && now - s->heard_ms > self->timeout_ms) {
            char why[96];
            snprintf(why, sizeof why, "timeout: not heard from for %lld s",
                     (long long)(self->timeout_ms / 1000));
            s_drop(s, why);
        }
    }
}

/* ---- The threads' end of the channel. */

zsock_t *rt_sync_push_new(const char *endpoint)
{
    rt_sock_opts_t po = {.type = ZMQ_PUSH, .endpoint = endpoint, .what = "initial copy channel"};
    zsock_t *push = rt_sock_new(&po);
    if (push)
        zsock_set_sndtimeo(push, PUSH_TIMEOUT_MS);
    return push;
}

static void s_free_frame(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int rt_sync_push_msg(zsock_t *push, const char *id, size_t idlen, const rt_msg_t *msg)
{
    void *frame;
    size_t len;
    int rc = rt_msg_encode(msg, &frame, &len);
    if (rc < 0)
        return rc;
    void *sock = zsock_resolve(push);
    zmq_msg_t body;
    if (zmq_msg_init_data(&body, frame, len, s_free_frame, NULL) != 0) {
        free(frame);
        return RT_ENOMEM;
    }
    if (zmq_send(sock, "F", 1, ZMQ_SNDMORE) < 0 || zmq_send(sock, id, idlen, ZMQ_SNDMORE) < 0 ||
        zmq_msg_send(&body, sock, 0) < 0) {
        zmq_msg_close(&body);
        return RT_EIO;
    }
    return RT_OK;
}

void rt_sync_push_error(zsock_t *push, const char *id, size_t idlen, int code, const char *text)
{
    rt_msg_t m = {.type = RT_MSG_ERROR, .code = code, .text = (char *)text};
    if (rt_sync_push_msg(push, id, idlen, &m) < 0)
        rt_warn("could not send ERROR \"%s\" to %.*s", text, (int)(idlen < 64 ? idlen : 64), id);
}

void rt_sync_push_note(zsock_t *push, char note, uint64_t sync_id)
{
    if (zmq_send(zsock_resolve(push), &note, 1, ZMQ_SNDMORE) >= 0)
        zmq_send(zsock_resolve(push), &sync_id, sizeof sync_id, 0);
}

uint64_t rt_sync_pop_u64(zmsg_t *msg)
{
    uint64_t v = 0;
    zframe_t *f = zmsg_pop(msg);
    if (f && zframe_size(f) == sizeof v)
        memcpy(&v, zframe_data(f), sizeof v);
    zframe_destroy(&f);
    return v;
}
