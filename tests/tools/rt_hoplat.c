/* tests/tools/rt_hoplat.c - what one ZeroMQ hop costs on this machine, against plain TCP,
 * for the bench's latency case (bench/run.sh prints it beside the latency rows).
 *
 * Usage: rt_hoplat [SAMPLES [INTERVAL_US]]   (default 2000 samples, 1000 us apart)
 *
 * A child process echoes 64-byte messages; the parent sends one, waits for it to come
 * back and sleeps until the next is due, so that every message finds the other side
 * asleep, as a replication hop does at a moderate rate. Over 127.0.0.1, twice:
 *   tcp  a TCP connection (TCP_NODELAY), blocking read and write on both sides;
 *   zmq  a ZeroMQ DEALER and ROUTER over tcp://, as rt's sockets: on each side an I/O
 *        thread moves the bytes and hands each message to the application thread.
 * Prints "tcp round trip us: p50 P p99 Q", the same for zmq, and what one ZeroMQ hop
 * adds at p50 (half the difference of the round trips). Exit 0, or 1 on a failure
 * (printed). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_MSG 64
#define S_WARMUP 200

static double s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void s_sleep_until(double t_us)
{
    struct timespec ts = {.tv_sec = (time_t)(t_us / 1e6),
                          .tv_nsec = (long)((t_us - (double)(time_t)(t_us / 1e6) * 1e6) * 1e3)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int s_full(int fd, char *buf, size_t n, int writing)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)k;
    }
    return 0;
}

/* Sends samples paced messages over one transport; rtt gets each round trip (us). The
 * send and receive functions return 0 or -1. */
typedef int (*s_io_fn)(void *ctx, char *buf);
static int s_measure(void *ctx, s_io_fn send_fn, s_io_fn recv_fn, int samples, int interval_us,
                     double *rtt)
{
    char buf[S_MSG];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < S_WARMUP; i++)
        if (send_fn(ctx, buf) < 0 || recv_fn(ctx, buf) < 0)
            return -1;
    double next = s_now_us();
    for (int i = 0; i < samples; i++) {
        next += interval_us;
        s_sleep_until(next);
        double t0 = s_now_us();
        if (send_fn(ctx, buf) < 0 || recv_fn(ctx, buf) < 0)
            return -1;
        rtt[i] = s_now_us() - t0;
    }
    return 0;
}

static int s_tcp_send(void *ctx, char *buf)
{
    return s_full(*(int *)ctx, buf, S_MSG, 1);
}

static int s_tcp_recv(void *ctx, char *buf)
{
    return s_full(*(int *)ctx, buf, S_MSG, 0);
}

static int s_zmq_send(void *ctx, char *buf)
{
    return zmq_send(ctx, buf, S_MSG, 0) == S_MSG ? 0 : -1;
}

static int s_zmq_recv(void *ctx, char *buf)
{
    return zmq_recv(ctx, buf, S_MSG, 0) == S_MSG ? 0 : -1;
}

static pid_t s_fork(void)
{
    pid_t pid = fork();
    if (pid < 0)
        perror("rt_hoplat: fork");
    return pid;
}

/* The TCP round trips: the child connects and echoes until the connection closes. */
static int s_tcp(int samples, int interval_us, double *rtt)
{
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        perror("rt_hoplat: tcp listen");
        return -1;
    }
    pid_t pid = s_fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(lfd);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        char buf[S_MSG];
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
            _exit(1);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (s_full(fd, buf, S_MSG, 0) == 0 && s_full(fd, buf, S_MSG, 1) == 0) {
        }
        _exit(0);
    }
    int fd = accept(lfd, NULL, NULL);
    close(lfd);
    int rc = -1;
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rc = s_measure(&fd, s_tcp_send, s_tcp_recv, samples, interval_us, rtt);
        close(fd);
    }
    waitpid(pid, NULL, 0);
    if (rc < 0)
        fprintf(stderr, "rt_hoplat: tcp echo failed\n");
    return rc;
}

/* The ZeroMQ round trips: the child binds a ROUTER, tells its endpoint through a pipe and
 * echoes until an empty message. */
static int s_zmq(int samples, int interval_us, double *rtt)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("rt_hoplat: pipe");
        return -1;
    }
    pid_t pid = s_fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(p[0]);
        void *zctx = zmq_ctx_new();
        void *router = zctx ? zmq_socket(zctx, ZMQ_ROUTER) : NULL;
        char ep[256] = "";
        size_t eplen = sizeof ep;
        if (!router || zmq_bind(router, "tcp://127.0.0.1:*") != 0 ||
            zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &eplen) != 0)
            _exit(1);
        if (write(p[1], ep, sizeof ep) != (ssize_t)sizeof ep)
            _exit(1);
        close(p[1]);
        for (;;) {
            char id[256], buf[S_MSG];
            int idn = zmq_recv(router, id, sizeof id, 0);
            int n = idn > 0 ? zmq_recv(router, buf, sizeof buf, 0) : -1;
            if (n <= 0 || zmq_send(router, id, (size_t)idn, ZMQ_SNDMORE) < 0 ||
                zmq_send(router, buf, (size_t)n, 0) < 0)
                break;
        }
        zmq_close(router);
        zmq_ctx_term(zctx);
        _exit(0);
    }
    close(p[1]);
    char ep[256];
    int rc = -1;
    void *zctx = NULL, *dealer = NULL;
    if (s_full(p[0], ep, sizeof ep, 0) == 0 && (zctx = zmq_ctx_new()) &&
        (dealer = zmq_socket(zctx, ZMQ_DEALER)) && zmq_connect(dealer, ep) == 0) {
        rc = s_measure(dealer, s_zmq_send, s_zmq_recv, samples, interval_us, rtt);
        zmq_send(dealer, "", 0, 0); /* ends the child's echo */
    }
    close(p[0]);
    if (dealer) {
        int linger = 1000;
        zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(dealer);
    }
    if (zctx)
        zmq_ctx_term(zctx);
    if (rc < 0) {
        fprintf(stderr, "rt_hoplat: zmq echo failed\n");
        kill(pid, SIGKILL);
    }
    waitpid(pid, NULL, 0);
    return rc;
}

static void s_print(const char *name, double *rtt, int n, double *p50)
{
    qsort(rtt, (size_t)n, sizeof *rtt, s_cmp);
    *p50 = rtt[n / 2];
    printf("%s round trip us: p50 %.1f p99 %.1f\n", name, *p50, rtt[(n * 99) / 100]);
}

int main(int argc, char **argv)
{
    int samples = argc > 1 ? atoi(argv[1]) : 2000;
    int interval_us = argc > 2 ? atoi(argv[2]) : 1000;
    if (argc > 3 || samples < 10 || samples > 1000000 || interval_us < 0 || interval_us > 1000000) {
        fprintf(stderr, "usage: rt_hoplat [SAMPLES (10..1000000) [INTERVAL_US (0..1000000)]]\n");
        return 1;
    }
    double *tcp = calloc((size_t)samples, sizeof *tcp);
    double *zmq = calloc((size_t)samples, sizeof *zmq);
    if (!tcp || !zmq) {
        fprintf(stderr, "rt_hoplat: out of memory\n");
        return 1;
    }
    double tcp50, zmq50;
    int rc = s_tcp(samples, interval_us, tcp) == 0 && s_zmq(samples, interval_us, zmq) == 0 ? 0 : 1;
    if (rc == 0) {
        s_print("tcp", tcp, samples, &tcp50);
        s_print("zmq", zmq, samples, &zmq50);
        printf("one ZeroMQ hop adds at p50 us: %.1f\n", (zmq50 - tcp50) / 2);
    }
    free(tcp);
    free(zmq);
    return rc;
}
