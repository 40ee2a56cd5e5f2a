/* publisher/sockfd.h - what the kernel says of a socket libzmq opened for a peer: which
 * socket it is, where it was accepted, whom it connects, and how many bytes were
 * written to it; and ending its connection. It never closes: the sockets are libzmq's. */
#ifndef RT_SOCKFD_H
#define RT_SOCKFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A bound endpoint: the local address of every connection accepted on it. */
typedef struct {
    int family;     /* AF_INET (TCP over IPv4 or IPv6: the port), AF_UNIX (the path), 0: none */
    int port;       /* TCP port */
    char path[108]; /* ipc:// path */
} rt_sockfd_local_t;

/* The local address of connections accepted on endpoint ("tcp://HOST:PORT" or
 * "ipc://PATH", as libzmq reports a bound endpoint); family 0 for any other. */
rt_sockfd_local_t rt_sockfd_local(const char *endpoint);

/* True when fd is a connected socket accepted on local (never a listener, nor any other
 * socket of the process); sets *ino to its inode, which tells it from a later socket
 * given the same number, and writes the peer's address ("IP:PORT", or "local") to addr
 * (size bytes) when addr is not NULL. */
bool rt_sockfd_accepted(int fd, const rt_sockfd_local_t *local, ino_t *ino, char *addr,
                        size_t size);

/* True while fd is the socket whose inode is ino. */
bool rt_sockfd_is(int fd, ino_t ino);

/* Sets *bytes to the bytes written to TCP socket fd since it was opened (acknowledged by
 * the peer's host, or still in the send queue); false when fd is not TCP. */
bool rt_sockfd_written(int fd, uint64_t *bytes);

/* Ends the connection of socket fd without closing it: shutdown(2) both ways, so its
 * owner reads end of file and closes it, with lingering off, so that close resets the
 * connection (the peer's host learns of it even while it does not read, and what was
 * not sent is discarded at once). False on error, with errno set. */
bool rt_sockfd_shutdown(int fd);

#endif
