/* publisher/peers.h - the ROUTER's connections: what waits in each one's queue, and
 * dropping a peer that does not read.
 *
 * libzmq 4.3 queues what the ROUTER sends to a peer until the peer reads it, up to a
 * number of messages, and has no call to disconnect one peer. This module keeps, per
 * routing id, the connection its last message came from (the socket libzmq numbers
 * ZMQ_SRCFD) and the bytes handed to the ROUTER for it; the kernel says how many bytes
 * libzmq has written to that socket, so the difference is at most what still waits in
 * libzmq's queue. A peer whose queue holds more than RT_PEERS_REPLIES replies, or is at
 * the high-water mark, is dropped: shutdown(2) of its socket, after which libzmq reads
 * end of file, closes the connection (resetting it) and frees its queue. The socket
 * stays libzmq's: it is never closed here. */
#ifndef RT_PEERS_H
#define RT_PEERS_H

#include <stddef.h>

#include "rt.h"

/* A subscriber has at most 3 FETCHes out, so at most 3 replies wait for it; more than
 * this many is a peer that asks and does not read. */
#define RT_PEERS_REPLIES 4
/* A dropped peer's messages are ignored this long: those it sent before its connection
 * closed, which libzmq still delivers. */
#define RT_PEERS_GRACE_MS 1000

typedef struct rt_peers_t rt_peers_t;

/* endpoint: the ROUTER's bound endpoint as libzmq reports it (ZMQ_LAST_ENDPOINT, e.g.
 * "tcp://127.0.0.1:7470"); only sockets with that local port (ipc: that path) are ever
 * shut down. max_reply: the most bytes one reply holds (a larger single record
 * excepted); hwm: the ROUTER's send high-water mark in messages (for the log). NULL
 * when out of memory. */
rt_peers_t *rt_peers_new(const char *endpoint, size_t max_reply, int hwm);
/* Frees; clears *self_p. Safe on NULL. The sockets are libzmq's and stay open. */
void rt_peers_destroy(rt_peers_t **self_p);

/* A message from routing id (idlen bytes) arrived on libzmq's socket fd (-1 when
 * unknown: then that peer is never dropped). A new connection for id (another fd, or
 * the same number for another socket) starts its count again. Returns false when the
 * message is to be ignored: id was dropped less than RT_PEERS_GRACE_MS ago. */
bool rt_peers_heard(rt_peers_t *self, const void *id, size_t idlen, int fd);

/* len bytes were handed to the ROUTER for id. */
void rt_peers_queued(rt_peers_t *self, const void *id, size_t idlen, size_t len);

/* A reply of bytes bytes (a FETCH's records) was handed to the ROUTER for id: drops id
 * when more than RT_PEERS_REPLIES times the largest reply (at least max_reply) waits
 * for it. Returns true when it was dropped. */
bool rt_peers_replied(rt_peers_t *self, const void *id, size_t idlen, size_t bytes);

/* A send to id failed because its queue is at the high-water mark: drops it. Returns
 * true when it was dropped (false: already dropped, or its socket is not known). */
bool rt_peers_full(rt_peers_t *self, const void *id, size_t idlen);

/* Forgets peers not heard from for a minute. Call about once a second. */
void rt_peers_tick(rt_peers_t *self);

/* Peers dropped since start. */
uint64_t rt_peers_dropped(const rt_peers_t *self);

#endif
