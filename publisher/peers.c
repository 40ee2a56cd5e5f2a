/* publisher/peers.c - the ROUTER's connections: what waits in each one's queue, and
 * dropping a peer that does not read (peers.h).
 *
 * What waits for a peer is estimated from below: the bytes handed to the ROUTER for it
 * since a base point, minus the bytes libzmq wrote to its socket since then (as the
 * kernel counts them: sockfd.c). The kernel's figure includes ZMTP framing, heartbeats and CURVE,
 * so the estimate never exceeds the truth; whenever it is not positive the base moves to now, so
 * that framing counted over a long connection does not pile up as credit. Without TCP (ipc://)
 * there is no such figure: only a full queue drops a peer.
 *
 * libzmq reuses a file descriptor number as soon as it closes a connection, so a
 * socket is shut down only while it is still the one seen with the peer's message (the
 * same inode) and is a connection accepted on the ROUTER's endpoint: no other socket of
 * the process (PostgreSQL, HTTP, PUB) is ever touched. One race remains: a message that
 * libzmq delivers after its connection closed names the old number, which a new ROUTER
 * connection may have been given meanwhile; a drop then would disconnect that peer,
 * which reconnects. */
#include "peers.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sockfd.h"

#define S_IDLE_MS 60000 /* a peer not heard from this long is forgotten */
#define S_PEERS_MAX 10000
#define S_ID_MAX 255 /* ZMTP routing ids are 1 to 255 bytes */

typedef struct {
    char name[68];      /* the routing id for logs: at most 64 bytes, control bytes as '?' */
    int fd;             /* libzmq's socket of its connection, -1 unknown */
    ino_t ino;          /* that socket's inode: tells it from a later one with the same fd */
    uint64_t queued;    /* bytes handed to the ROUTER for it since the base */
    uint64_t base_wire; /* bytes libzmq had written to the socket at the base */
    size_t largest;     /* largest reply handed to the ROUTER for it on this connection */
    int64_t heard_ms;   /* its last message (monotonic) */
    int64_t dropped_ms; /* when it was dropped, 0 if it was not */
} s_peer_t;

struct rt_peers_t {
    zhashx_t *peers;         /* hex of the routing id -> s_peer_t */
    rt_sockfd_local_t local; /* the ROUTER's endpoint: its connections' local address */
    size_t max_reply;        /* most bytes of a reply */
    int hwm;                 /* the ROUTER's send high-water mark */
    uint64_t dropped;        /* peers dropped since start */
};

static void s_peer_free(void **item)
{
    free(*item);
    *item = NULL;
}

rt_peers_t *rt_peers_new(const char *endpoint, size_t max_reply, int hwm)
{
    rt_peers_t *self = calloc(1, sizeof *self);
    if (!self || !(self->peers = zhashx_new())) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->peers, s_peer_free);
    self->local = rt_sockfd_local(endpoint);
    self->max_reply = max_reply;
    self->hwm = hwm;
    return self;
}

void rt_peers_destroy(rt_peers_t **self_p)
{
    rt_peers_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->peers);
    free(self);
    *self_p = NULL;
}

/* The peer of routing id, NULL when it is not known (with create: when there are too
 * many, or no memory). */
static s_peer_t *s_peer(rt_peers_t *self, const void *id, size_t idlen, bool create)
{
    if (idlen == 0 || idlen > S_ID_MAX)
        return NULL;
    char key[2 * S_ID_MAX + 1];
    for (size_t i = 0; i < idlen; i++)
        snprintf(key + 2 * i, 3, "%02x", ((const unsigned char *)id)[i]);
    s_peer_t *p = zhashx_lookup(self->peers, key);
    if (p || !create || zhashx_size(self->peers) >= S_PEERS_MAX)
        return p;
    if (!(p = calloc(1, sizeof *p)))
        return NULL;
    size_t n = idlen < 64 ? idlen : 64;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = ((const unsigned char *)id)[i];
        p->name[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    p->fd = -1;
    zhashx_insert(self->peers, key, p);
    return p;
}

/* Moves p's base to now: nothing is counted as waiting for it. */
static void s_rebase(s_peer_t *p, uint64_t written)
{
    p->queued = 0;
    p->base_wire = written;
}

bool rt_peers_heard(rt_peers_t *self, const void *id, size_t idlen, int fd)
{
    s_peer_t *p = s_peer(self, id, idlen, true);
    if (!p)
        return true;
    int64_t now = rt_mono_ms();
    if (p->dropped_ms) {
        if (now - p->dropped_ms < RT_PEERS_GRACE_MS)
            return false;
        p->dropped_ms = 0;
    }
    p->heard_ms = now;
    if (fd >= 0 && fd == p->fd && rt_sockfd_is(fd, p->ino))
        return true;
    ino_t ino;
    uint64_t written = 0;
    if (!rt_sockfd_accepted(fd, &self->local, &ino, NULL, 0)) {
        p->fd = -1;
        return true;
    }
    p->fd = fd;
    p->ino = ino;
    p->largest = 0;
    rt_sockfd_written(fd, &written);
    s_rebase(p, written);
    return true;
}

void rt_peers_queued(rt_peers_t *self, const void *id, size_t idlen, size_t len)
{
    s_peer_t *p = s_peer(self, id, idlen, false);
    if (p && p->fd >= 0)
        p->queued += len;
}

/* Shuts p's connection down, once, if its socket is still the one it was seen on. */
static bool s_drop(rt_peers_t *self, s_peer_t *p, const char *why)
{
    ino_t ino;
    char addr[64];
    if (!rt_sockfd_accepted(p->fd, &self->local, &ino, addr, sizeof addr) || ino != p->ino) {
        p->fd = -1; /* that connection is gone already */
        return false;
    }
    if (!rt_sockfd_shutdown(p->fd)) {
        rt_warn("could not drop peer %s (%s), which does not read: %s", p->name, addr,
                strerror(errno));
        return false;
    }
    self->dropped++;
    rt_warn("dropped peer %s (%s): it does not read (%s)", p->name, addr, why);
    p->dropped_ms = rt_mono_ms();
    p->fd = -1;
    return true;
}

bool rt_peers_replied(rt_peers_t *self, const void *id, size_t idlen, size_t bytes)
{
    s_peer_t *p = s_peer(self, id, idlen, false);
    uint64_t written;
    if (!p || p->fd < 0 || !rt_sockfd_is(p->fd, p->ino) || !rt_sockfd_written(p->fd, &written) ||
        written < p->base_wire)
        return false;
    if (bytes > p->largest)
        p->largest = bytes;
    uint64_t taken = written - p->base_wire;
    if (taken >= p->queued) {
        s_rebase(p, written);
        return false;
    }
    uint64_t waiting = p->queued - taken;
    uint64_t reply = p->largest > self->max_reply ? p->largest : self->max_reply;
    if (waiting <= RT_PEERS_REPLIES * reply)
        return false;
    char why[128];
    snprintf(why, sizeof why, "at least %.1f MiB queued for it, more than %d replies' worth",
             (double)waiting / (1 << 20), RT_PEERS_REPLIES);
    return s_drop(self, p, why);
}

bool rt_peers_full(rt_peers_t *self, const void *id, size_t idlen)
{
    s_peer_t *p = s_peer(self, id, idlen, false);
    if (!p || p->fd < 0)
        return false;
    char why[64];
    snprintf(why, sizeof why, "%d messages queued for it", self->hwm);
    return s_drop(self, p, why);
}

void rt_peers_tick(rt_peers_t *self)
{
    int64_t now = rt_mono_ms();
    zlist_t *idle = zlist_new();
    if (!idle)
        return;
    zlist_autofree(idle);
    for (s_peer_t *p = zhashx_first(self->peers); p; p = zhashx_next(self->peers))
        if (now - p->heard_ms >= S_IDLE_MS && now - p->dropped_ms >= RT_PEERS_GRACE_MS)
            zlist_append(idle, (void *)zhashx_cursor(self->peers));
    for (const char *key = zlist_first(idle); key; key = zlist_next(idle))
        zhashx_delete(self->peers, key);
    zlist_destroy(&idle);
}

uint64_t rt_peers_dropped(const rt_peers_t *self)
{
    return self->dropped;
}
