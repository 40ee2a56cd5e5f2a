/* tests/tools/rt_tcpproxy.c - a TCP proxy whose forwarding a test can cut, for network faults.
 *
 * Usage: rt_tcpproxy LISTEN_PORT:TARGET_PORT...   (at most 8 pairs, 127.0.0.1 on both sides)
 *
 * Each LISTEN_PORT accepts connections and relays them byte for byte to TARGET_PORT.
 * Signals switch the mode of every pair at once:
 *   SIGUSR1  black hole: nothing is read, written or accepted any more, connections
 *            stay open (peers see silence, as behind a dead link);
 *   SIGUSR2  every open connection is reset (RST on both sides), then forwarding resumes;
 *   SIGHUP   forwarding resumes (what piled up in the kernel buffers flows on);
 *   SIGTERM, SIGINT  exit 0.
 * Logs "ready: ..." once listening and one line per mode change, to stderr.
 * With RT_PROXY_DUMP=FILE in the environment, every byte relayed (both directions) is
 * also appended to FILE, for tests that look for plaintext on the wire. With
 * RT_PROXY_RATE=BYTES, it reads at most BYTES a second over all connections (a slow
 * link). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_PAIRS 8
#define S_MAX_CONNS 256
#define S_BUF 65536

typedef struct {
    int listen_port;
    int target_port;
    int fd; /* listening socket */
} s_pair_t;

/* One direction of a relayed connection: bytes read from one socket, not yet written
 * to the other. */
typedef struct {
    char buf[S_BUF];
    size_t len;
    bool eof; /* the reading side closed: shut down the writing side once drained */
} s_dir_t;

typedef struct {
    int down;        /* accepted socket (towards the client) */
    int up;          /* connected socket (towards the target) */
    bool up_ready;   /* the non-blocking connect finished */
    s_dir_t to_up;   /* client -> target */
    s_dir_t to_down; /* target -> client */
} s_conn_t;

static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_req_hole = 0;
static volatile sig_atomic_t s_req_reset = 0;
static volatile sig_atomic_t s_req_pass = 0;

static void s_on_signal(int sig)
{
    if (sig == SIGUSR1)
        s_req_hole = 1;
    else if (sig == SIGUSR2)
        s_req_reset = 1;
    else if (sig == SIGHUP)
        s_req_pass = 1;
    else
        s_stop = 1;
}

static int s_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int s_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 || s_nonblock(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Closes a socket; with reset, as an abortive close (RST). */
static void s_close(int fd, bool reset)
{
    if (fd < 0)
        return;
    if (reset) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

static void s_conn_free(s_conn_t **conns, int i, bool reset)
{
    s_close(conns[i]->down, reset);
    s_close(conns[i]->up, reset);
    free(conns[i]);
    conns[i] = NULL;
}

static void s_accept(s_pair_t *p, s_conn_t **conns)
{
    for (;;) {
        int fd = accept(p->fd, NULL, NULL);
        if (fd < 0)
            return;
        int slot = -1;
        for (int i = 0; i < S_MAX_CONNS && slot < 0; i++)
            if (!conns[i])
                slot = i;
        s_conn_t *c = slot >= 0 ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            fprintf(stderr, "rt_tcpproxy: no room for another connection on port %d\n",
                    p->listen_port);
            close(fd);
            continue;
        }
        c->down = fd;
        c->up = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->up >= 0)
            setsockopt(c->up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->target_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (c->up < 0 || s_nonblock(fd) < 0 || s_nonblock(c->up) < 0 ||
            (connect(c->up, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)) {
            /* Target not there: the client sees its connection closed, as a refusal. */
            s_close(fd, true);
            s_close(c->up, false);
            free(c);
            continue;
        }
        conns[slot] = c;
    }
}

static FILE *s_dump;    /* RT_PROXY_DUMP, or NULL */
static double s_rate;   /* RT_PROXY_RATE: bytes read a second at most, 0 for no limit */
static double s_tokens; /* bytes that may be read now (at most a second's worth) */
static double s_tokens_at;

/* Bytes that may be read now, at most S_BUF. */
static size_t s_allowance(void)
{
    if (s_rate <= 0)
        return S_BUF;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    s_tokens += (now - s_tokens_at) * s_rate;
    s_tokens_at = now;
    if (s_tokens > s_rate)
        s_tokens = s_rate;
    return s_tokens < 1 ? 0 : s_tokens < S_BUF ? (size_t)s_tokens : S_BUF;
}

/* Moves bytes from fd into d; false when the connection must be dropped. */
static bool s_read(int fd, s_dir_t *d)
{
    size_t room = S_BUF - d->len, allowed = s_allowance();
    if (d->eof || room == 0 || allowed == 0)
        return true;
    ssize_t n = read(fd, d->buf + d->len, room < allowed ? room : allowed);
    if (n > 0 && s_rate > 0)
        s_tokens -= (double)n;
    if (n > 0 && s_dump) {
        fwrite(d->buf + d->len, 1, (size_t)n, s_dump);
        fflush(s_dump);
    }
    if (n > 0)
        d->len += (size_t)n;
    else if (n == 0)
        d->eof = true;
    else if (errno != EAGAIN && errno != EINTR)
        return false;
    return true;
}

/* Writes what d holds to fd; false when the connection must be dropped. */
static bool s_write(int fd, s_dir_t *d)
{
    if (d->len > 0) {
        ssize_t n = send(fd, d->buf, d->len, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        memmove(d->buf, d->buf + n, d->len - (size_t)n);
        d->len -= (size_t)n;
    }
    if (d->len == 0 && d->eof)
        shutdown(fd, SHUT_WR);
    return true;
}

static int s_parse_pairs(int argc, char **argv, s_pair_t *pairs)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        int l = 0, t = 0;
        char extra;
        if (n == S_MAX_PAIRS || sscanf(argv[i], "%d:%d%c", &l, &t, &extra) != 2 || l <= 0 ||
            l > 65535 || t <= 0 || t > 65535)
            return -1;
        pairs[n].listen_port = l;
        pairs[n].target_port = t;
        pairs[n].fd = -1;
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    s_pair_t pairs[S_MAX_PAIRS];
    int npairs = s_parse_pairs(argc, argv, pairs);
    if (getenv("RT_PROXY_DUMP") && !(s_dump = fopen(getenv("RT_PROXY_DUMP"), "ab"))) {
        fprintf(stderr, "rt_tcpproxy: cannot open %s\n", getenv("RT_PROXY_DUMP"));
        return 2;
    }
    if (getenv("RT_PROXY_RATE"))
        s_rate = atof(getenv("RT_PROXY_RATE"));
    if (npairs <= 0) {
        fprintf(stderr, "usage: rt_tcpproxy LISTEN_PORT:TARGET_PORT... (at most %d)\n",
                S_MAX_PAIRS);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    static s_conn_t *conns[S_MAX_CONNS];
    static struct pollfd pfd[S_MAX_PAIRS + 2 * S_MAX_CONNS];
    static int owner[S_MAX_PAIRS + 2 * S_MAX_CONNS]; /* pair index, or conn index + S_MAX_PAIRS */
    for (int i = 0; i < npairs; i++) {
        pairs[i].fd = s_listen(pairs[i].listen_port);
        if (pairs[i].fd < 0) {
            fprintf(stderr, "rt_tcpproxy: cannot listen on 127.0.0.1:%d: %s\n",
                    pairs[i].listen_port, strerror(errno));
            goto cleanup;
        }
    }
    fprintf(stderr, "rt_tcpproxy: ready: %d port pair(s), forwarding\n", npairs);
    bool hole = false;
    unsigned long resets = 0;
    while (!s_stop) {
        if (s_req_hole) {
            s_req_hole = 0;
            hole = true;
            fprintf(stderr, "rt_tcpproxy: mode hole (nothing forwarded, connections kept)\n");
        }
        if (s_req_pass) {
            s_req_pass = 0;
            hole = false;
            fprintf(stderr, "rt_tcpproxy: mode pass (forwarding)\n");
        }
        if (s_req_reset) {
            s_req_reset = 0;
            int n = 0;
            for (int i = 0; i < S_MAX_CONNS; i++)
                if (conns[i]) {
                    s_conn_free(conns, i, true);
                    n++;
                }
            resets += (unsigned long)n;
            hole = false;
            fprintf(stderr, "rt_tcpproxy: reset %d connection(s) (%lu in total), mode pass\n", n,
                    resets);
        }
        int nfds = 0;
        bool may_read = s_allowance() > 0;
        if (!hole) {
            for (int i = 0; i < npairs; i++) {
                pfd[nfds] = (struct pollfd){.fd = pairs[i].fd, .events = POLLIN};
                owner[nfds++] = i;
            }
            for (int i = 0; i < S_MAX_CONNS; i++) {
                s_conn_t *c = conns[i];
                if (!c)
                    continue;
                short ev_down = 0, ev_up = 0;
                if (may_read && !c->to_up.eof && c->to_up.len < S_BUF)
                    ev_down |= POLLIN;
                if (c->to_down.len > 0)
                    ev_down |= POLLOUT;
                if (!c->up_ready)
                    ev_up |= POLLOUT;
                else {
                    if (may_read && !c->to_down.eof && c->to_down.len < S_BUF)
                        ev_up |= POLLIN;
                    if (c->to_up.len > 0)
                        ev_up |= POLLOUT;
                }
                pfd[nfds] = (struct pollfd){.fd = c->down, .events = ev_down};
                owner[nfds++] = S_MAX_PAIRS + i;
                pfd[nfds] = (struct pollfd){.fd = c->up, .events = ev_up};
                owner[nfds++] = S_MAX_PAIRS + i;
            }
        }
        int n = poll(pfd, (nfds_t)nfds, may_read ? 100 : 10);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "rt_tcpproxy: poll failed: %s\n", strerror(errno));
            goto cleanup;
        }
        if (n <= 0 || hole)
            continue;
        for (int k = 0; k < nfds; k++) {
            if (!pfd[k].revents)
                continue;
            if (owner[k] < S_MAX_PAIRS) {
                s_accept(&pairs[owner[k]], conns);
                continue;
            }
            int i = owner[k] - S_MAX_PAIRS;
            s_conn_t *c = conns[i];
            if (!c)
                continue;
            bool ok = true;
            if (pfd[k].fd == c->up && !c->up_ready) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->up, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0)
                    ok = false;
                else
                    c->up_ready = true;
            } else if (pfd[k].fd == c->down) {
                if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                    ok = s_read(c->down, &c->to_up);
                if (ok && c->to_down.len > 0 && (pfd[k].revents & POLLOUT))
                    ok = s_write(c->down, &c->to_down);
            } else {
                if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                    ok = s_read(c->up, &c->to_down);
                if (ok && c->to_up.len > 0 && (pfd[k].revents & POLLOUT))
                    ok = s_write(c->up, &c->to_up);
            }
            /* Pass on what was just read, and a close once drained. */
            if (ok && c->up_ready)
                ok = s_write(c->up, &c->to_up) && s_write(c->down, &c->to_down);
            /* A socket hung up or in error: what could be passed on was, drop the pair. */
            bool gone = (pfd[k].revents & (POLLHUP | POLLERR)) != 0;
            if (!ok || gone || (c->to_up.eof && c->to_down.eof && !c->to_up.len && !c->to_down.len))
                s_conn_free(conns, i, !ok);
        }
    }
    fprintf(stderr, "rt_tcpproxy: stopping\n");
    rc = 0;
cleanup:
    for (int i = 0; i < S_MAX_CONNS; i++)
        if (conns[i])
            s_conn_free(conns, i, false);
    for (int i = 0; i < npairs; i++)
        if (pairs[i].fd >= 0)
            close(pairs[i].fd);
    return rc;
}
