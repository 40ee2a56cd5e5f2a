/* publisher/sockfd.c - what the kernel says of a socket libzmq opened for a peer. */
#include "sockfd.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

_Static_assert(sizeof(((rt_sockfd_local_t *)0)->path) ==
                   sizeof(((struct sockaddr_un *)0)->sun_path),
               "an ipc path as long as sun_path");

rt_sockfd_local_t rt_sockfd_local(const char *endpoint)
{
    rt_sockfd_local_t l = {0};
    const char *colon = strrchr(endpoint, ':');
    if (strncmp(endpoint, "tcp://", 6) == 0 && colon && atoi(colon + 1) > 0) {
        l.family = AF_INET;
        l.port = atoi(colon + 1);
    } else if (strncmp(endpoint, "ipc://", 6) == 0) {
        l.family = AF_UNIX;
        snprintf(l.path, sizeof l.path, "%s", endpoint + 6);
    }
    return l;
}

/* Writes "IP:PORT" of a, or "local", to addr. */
static void s_address(const struct sockaddr_storage *a, char *addr, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->ss_family == AF_INET &&
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof ip))
        snprintf(addr, size, "%s:%d", ip, ntohs(((const struct sockaddr_in *)a)->sin_port));
    else if (a->ss_family == AF_INET6 &&
             inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof ip))
        snprintf(addr, size, "[%s]:%d", ip, ntohs(((const struct sockaddr_in6 *)a)->sin6_port));
    else
        snprintf(addr, size, "local");
}

bool rt_sockfd_accepted(int fd, const rt_sockfd_local_t *local, ino_t *ino, char *addr, size_t size)
{
    struct stat st;
    if (fd < 0 || !local->family || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    struct sockaddr_storage a, p;
    socklen_t alen = sizeof a, plen = sizeof p;
    if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0 ||
        getpeername(fd, (struct sockaddr *)&p, &plen) != 0) /* not connected: a listener */
        return false;
    bool ours = false;
    if (local->family == AF_INET && a.ss_family == AF_INET)
        ours = ntohs(((struct sockaddr_in *)&a)->sin_port) == local->port;
    else if (local->family == AF_INET && a.ss_family == AF_INET6)
        ours = ntohs(((struct sockaddr_in6 *)&a)->sin6_port) == local->port;
    else if (local->family == AF_UNIX && a.ss_family == AF_UNIX)
        ours = strncmp(((struct sockaddr_un *)&a)->sun_path, local->path, sizeof local->path) == 0;
    if (!ours)
        return false;
    *ino = st.st_ino;
    if (addr)
        s_address(&p, addr, size);
    return true;
}

bool rt_sockfd_is(int fd, ino_t ino)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino;
}

bool rt_sockfd_written(int fd, uint64_t *bytes)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int outq = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked ||
        ioctl(fd, SIOCOUTQ, &outq) != 0 || outq < 0)
        return false;
    *bytes = ti.tcpi_bytes_acked + (uint64_t)outq;
    return true;
}

bool rt_sockfd_shutdown(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0 && shutdown(fd, SHUT_RDWR) == 0;
}
