/* tests/unit/test_http.c - web/http over real sockets: routes, limits, timeouts, shutdown,
 * HTTPS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dashboard.h"
#include "http.h"
#include "prometheus.h"

/* What the test handler saw and how it behaves. */
typedef struct {
    int calls;          /* handler invocations */
    int sleep_ms;       /* /api/slow sleeps this long */
    int64_t queued_us;  /* queued_us of the last request */
    char last_path[64]; /* path of the last request */
} s_state_t;

/* A parsed response. */
typedef struct {
    int status;
    char headers[2048];
    char *body;
    size_t body_len;
    bool eof_only; /* the connection closed without a response */
} s_resp_t;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int s_count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ---- handlers */

static void s_h_metrics(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    resp->content_type = RT_PROMETHEUS_CONTENT_TYPE;
    rt_prometheus_counter(&resp->body, "rt_test_requests_total", "Requests.", NULL, 1);
}

static void s_h_echo(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    char name[64];
    int rc = rt_http_query_param(req->query, "name", name, sizeof name);
    rt_buf_printf(&resp->body, "name=%s;rc=%d;len=%zu;body=", rc == 0 ? name : "-", rc,
                  req->body_len);
    rt_buf_append(&resp->body, req->body, req->body_len);
}

static void s_h_slow(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)req;
    s_state_t *st = arg;
    s_sleep_ms(st->sleep_ms);
    rt_buf_puts(&resp->body, "slow done\n");
}

static void s_h_page(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    resp->content_type = "text/html; charset=utf-8";
    rt_buf_puts(&resp->body, "<!doctype html><title>t</title>");
}

static const rt_http_route_t s_routes[] = {
    {"GET", "/", s_h_page, false},           {"GET", "/metrics", s_h_metrics, false},
    {"POST", "/api/echo", s_h_echo, false},  {"PUT", "/api/echo", s_h_echo, false},
    {"GET", "/api/slow", s_h_slow, false},   {"GET", "/dashboard", rt_http_dashboard_page, false},
    {"POST", "/api/change", s_h_echo, true},
};

static void s_handler(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    s_state_t *st = arg;
    st->calls++;
    st->queued_us = req->queued_us;
    snprintf(st->last_path, sizeof st->last_path, "%s", req->path);
    rt_http_route(s_routes, sizeof s_routes / sizeof s_routes[0], st, req, resp);
}

/* ---- a tiny client */

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void s_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Sends METHOD PATH with extra header lines and a body on a new connection. */
static int s_request(int port, const char *method, const char *target, const char *headers,
                     const void *body, size_t body_len)
{
    int fd = s_connect(port);
    char head[1024];
    char host[64] = "";
    if (!headers || !strstr(headers, "Host:"))
        snprintf(host, sizeof host, "Host: 127.0.0.1:%d\r\n", port);
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\n%sConnection: close\r\n%s", method,
                     target, host, headers ? headers : "");
    if (body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    s_send_all(fd, head, (size_t)n);
    if (body && body_len)
        s_send_all(fd, body, body_len);
    return fd;
}

static void s_parse(const char *raw, size_t len, s_resp_t *r)
{
    memset(r, 0, sizeof *r);
    if (len == 0) {
        r->eof_only = true;
        return;
    }
    assert_true(len > 12 && memcmp(raw, "HTTP/1.", 7) == 0);
    r->status = atoi(raw + 9);
    const char *end = strstr(raw, "\r\n\r\n");
    assert_non_null(end);
    size_t hl = (size_t)(end - raw);
    assert_true(hl < sizeof r->headers);
    memcpy(r->headers, raw, hl);
    r->body_len = len - hl - 4;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
}

/* Reads the responses of nfds connections until each closes, calling rt_http_serve
 * whenever its fd is readable if serve is set. At most 5 s. */
static void s_finish_many(rt_http_t *h, bool serve, int *fds, int nfds, s_resp_t *out)
{
    char *raw[16] = {0};
    size_t len[16] = {0}, cap[16] = {0};
    bool open[16];
    int left = nfds;
    assert_true(nfds <= 16);
    for (int i = 0; i < nfds; i++)
        open[i] = true;
    int64_t deadline = s_now_ms() + 5000;
    while (left > 0) {
        assert_true(s_now_ms() < deadline);
        struct pollfd p[17];
        int np = 0;
        for (int i = 0; i < nfds; i++)
            p[np++] = (struct pollfd){.fd = open[i] ? fds[i] : -1, .events = POLLIN};
        p[np++] = (struct pollfd){.fd = serve ? rt_http_fd(h) : -1, .events = POLLIN};
        int rc = poll(p, (nfds_t)np, 100);
        assert_true(rc >= 0 || errno == EINTR);
        if (serve && (p[nfds].revents & POLLIN))
            rt_http_serve(h);
        for (int i = 0; i < nfds; i++) {
            if (!open[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (cap[i] - len[i] < 4096) {
                cap[i] = cap[i] ? cap[i] * 2 : 8192;
                raw[i] = realloc(raw[i], cap[i]);
            }
            ssize_t n = recv(fds[i], raw[i] + len[i], cap[i] - len[i] - 1, 0);
            if (n > 0) {
                len[i] += (size_t)n;
                continue;
            }
            if (n < 0 && errno != ECONNRESET)
                continue;
            open[i] = false;
            left--;
            if (!raw[i])
                raw[i] = malloc(1);
            raw[i][len[i]] = '\0';
            s_parse(raw[i], len[i], &out[i]);
            free(raw[i]);
            close(fds[i]);
        }
    }
}

static void s_finish(rt_http_t *h, bool serve, int fd, s_resp_t *out)
{
    s_finish_many(h, serve, &fd, 1, out);
}

static void s_resp_free(s_resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* Case-insensitive header lookup; "" when absent. */
static const char *s_header(const s_resp_t *r, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    const char *line = strstr(r->headers, "\r\n");
    size_t nl = strlen(name);
    while (line) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl >= size)
                vl = size - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        line = strstr(line, "\r\n");
    }
    return out;
}

/* ---- fixtures */

typedef struct {
    rt_http_t *h;
    s_state_t st;
    int port;
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    f->h = rt_http_new("127.0.0.1:0", NULL, s_handler, &f->st);
    assert_non_null(f->h);
    f->port = rt_http_port(f->h);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    rt_http_destroy(&f->h);
    assert_null(f->h);
    free(f);
    return 0;
}

/* ---- tests */

static void test_metrics_ok(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    char v[256];
    s_finish(f->h, true, s_request(f->port, "GET", "/metrics", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(s_header(&r, "Content-Type", v, sizeof v), RT_PROMETHEUS_CONTENT_TYPE);
    assert_string_equal(s_header(&r, "Cache-Control", v, sizeof v), "no-store");
    assert_string_equal(r.body, "# HELP rt_test_requests_total Requests.\n"
                                "# TYPE rt_test_requests_total counter\n"
                                "rt_test_requests_total 1\n");
    assert_int_equal(f->st.calls, 1);
    assert_true(f->st.queued_us >= 0 && f->st.queued_us < 5000000);
    s_resp_free(&r);

    /* HEAD answers like GET, without a body. */
    s_finish(f->h, true, s_request(f->port, "HEAD", "/metrics", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    s_resp_free(&r);
    /* Nothing left: serving again handles nothing. */
    assert_int_equal(rt_http_serve(f->h), 0);
}

/* The page built from web/dashboard.html, served whole by the ready-made handler. */
static void test_dashboard_page(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    char v[256];
    assert_true(rt_dashboard_html_len > 1000);
    assert_int_equal(strlen(rt_dashboard_html), rt_dashboard_html_len);
    s_finish(f->h, true, s_request(f->port, "GET", "/dashboard", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(s_header(&r, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
    assert_int_equal(r.body_len, rt_dashboard_html_len);
    assert_memory_equal(r.body, rt_dashboard_html, rt_dashboard_html_len);
    assert_true(strncmp(r.body, "<!doctype html>\n", 16) == 0);
    assert_non_null(strstr(r.body, "</html>\n"));
    assert_null(strstr(r.body, "autotest")); /* tests drive the page from outside */
    s_resp_free(&r);
}

static void test_not_found_and_method(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    char v[256];
    s_finish(f->h, true, s_request(f->port, "GET", "/nope?x=1", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "not found: /nope\n");
    s_resp_free(&r);

    s_finish(f->h, true, s_request(f->port, "POST", "/metrics", NULL, "", 0), &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(s_header(&r, "Allow", v, sizeof v), "GET, HEAD");
    s_resp_free(&r);

    s_finish(f->h, true, s_request(f->port, "DELETE", "/api/echo", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(s_header(&r, "Allow", v, sizeof v), "POST, PUT");
    s_resp_free(&r);

    /* The path reaches the handler percent-decoded, without the query. */
    s_finish(f->h, true, s_request(f->port, "GET", "/a%20b?q=%41", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(f->st.last_path, "/a b");
    s_resp_free(&r);
}

static void test_query_and_body(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    const char body[] = "hello\0world";
    s_finish(f->h, true,
             s_request(f->port, "POST", "/api/echo?x=1&name=r%C3%A9plica+1%26", NULL, body,
                       sizeof body - 1),
             &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, strlen("name=réplica 1&;rc=0;len=11;body=") + 11);
    assert_memory_equal(r.body, "name=r\xc3\xa9plica 1&;rc=0;len=11;body=hello\0world", r.body_len);
    s_resp_free(&r);

    /* Exactly the limit is accepted. */
    char *big = malloc(RT_HTTP_MAX_BODY);
    memset(big, 'b', RT_HTTP_MAX_BODY);
    s_finish(f->h, true, s_request(f->port, "PUT", "/api/echo", NULL, big, RT_HTTP_MAX_BODY), &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, ";len=65536;"));
    s_resp_free(&r);
    free(big);
}

static void test_body_too_large(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    size_t n = RT_HTTP_MAX_BODY + 1;
    char *big = malloc(70 * 1024);
    memset(big, 'x', 70 * 1024);
    int calls = f->st.calls;
    s_finish(f->h, true, s_request(f->port, "POST", "/api/echo", NULL, big, n), &r);
    assert_int_equal(r.status, 413);
    s_resp_free(&r);
    s_finish(f->h, true, s_request(f->port, "POST", "/api/echo", NULL, big, 70 * 1024), &r);
    assert_int_equal(r.status, 413);
    s_resp_free(&r);
    /* A declared length far over the limit is refused before any byte is read. */
    int fd = s_request(f->port, "POST", "/api/echo", "Content-Length: 104857600\r\n", NULL, 0);
    s_send_all(fd, big, 1024);
    s_finish(f->h, true, fd, &r);
    assert_int_equal(r.status, 413);
    s_resp_free(&r);
    /* A chunked body over the limit too. */
    fd = s_request(f->port, "POST", "/api/echo", "Transfer-Encoding: chunked\r\n", NULL, 0);
    for (int i = 0; i < 5; i++) {
        char chunk[32];
        int cl = snprintf(chunk, sizeof chunk, "%x\r\n", 16 * 1024);
        s_send_all(fd, chunk, (size_t)cl);
        s_send_all(fd, big, 16 * 1024);
        s_send_all(fd, "\r\n", 2);
    }
    s_send_all(fd, "0\r\n\r\n", 5);
    s_finish(f->h, true, fd, &r);
    assert_int_equal(r.status, 413);
    s_resp_free(&r);
    free(big);
    assert_int_equal(f->st.calls, calls);
}

static void test_cross_site_refused(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    int calls = f->st.calls;
    s_finish(
        f->h, true,
        s_request(f->port, "POST", "/api/echo?name=a", "Origin: http://evil.example\r\n", "", 0),
        &r);
    assert_int_equal(r.status, 403);
    s_resp_free(&r);
    s_finish(f->h, true,
             s_request(f->port, "POST", "/api/echo", "Sec-Fetch-Site: cross-site\r\n", "", 0), &r);
    assert_int_equal(r.status, 403);
    s_resp_free(&r);
    assert_int_equal(f->st.calls, calls);
    /* The page's own origin is fine, and so is a GET from anywhere. */
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Origin: http://127.0.0.1:%d\r\nSec-Fetch-Site: same-origin\r\n",
             f->port);
    s_finish(f->h, true, s_request(f->port, "POST", "/api/echo?name=a", hdr, "", 0), &r);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    s_finish(f->h, true,
             s_request(f->port, "GET", "/metrics", "Origin: http://evil.example\r\n", NULL, 0), &r);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
}

/* A route that changes state: refused (403) while the server has no token, 401 without
 * the token or with another, served with it. */
static void test_token(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    int calls = f->st.calls;
    s_finish(f->h, true, s_request(f->port, "POST", "/api/change", NULL, "", 0), &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "--http-token"));
    s_resp_free(&r);
    rt_http_set_token(f->h, "0123456789abcdef-token");
    s_finish(f->h, true, s_request(f->port, "POST", "/api/change", NULL, "", 0), &r);
    assert_int_equal(r.status, 401);
    s_resp_free(&r);
    s_finish(f->h, true,
             s_request(f->port, "POST", "/api/change",
                       "Authorization: Bearer 0123456789abcdef-tokeX\r\n", "", 0),
             &r);
    assert_int_equal(r.status, 401);
    s_resp_free(&r);
    s_finish(f->h, true,
             s_request(f->port, "POST", "/api/change",
                       "Authorization: Bearer 0123456789abcdef-token\r\n", "", 0),
             &r);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    /* Routes that change nothing need no token. */
    s_finish(f->h, true, s_request(f->port, "POST", "/api/echo", NULL, "", 0), &r);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    assert_int_equal(f->st.calls, calls + 5);
}

/* A Host that is neither an address nor localhost (DNS rebinding) gets 421 before the
 * handler; addresses and localhost are served. */
static void test_host_checked(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    int calls = f->st.calls;
    s_finish(f->h, true,
             s_request(f->port, "GET", "/metrics", "Host: rebind.evil.example:80\r\n", NULL, 0),
             &r);
    assert_int_equal(r.status, 421);
    s_resp_free(&r);
    assert_int_equal(f->st.calls, calls);
    const char *ok[] = {"Host: localhost\r\n", "Host: [::1]:9187\r\n", "Host: 10.1.2.3:9187\r\n"};
    for (size_t i = 0; i < 3; i++) {
        s_finish(f->h, true, s_request(f->port, "GET", "/metrics", ok[i], NULL, 0), &r);
        assert_int_equal(r.status, 200);
        s_resp_free(&r);
    }
}

static void test_many_clients_one_serve(void **state)
{
    s_fix_t *f = *state;
    int fds[8];
    s_resp_t r[8];
    for (int i = 0; i < 8; i++)
        fds[i] = s_request(f->port, "GET", i % 2 ? "/metrics" : "/", NULL, NULL, 0);
    /* Wait until all eight wait in the mailbox, then answer them in one call. */
    int64_t deadline = s_now_ms() + 3000;
    int served = 0;
    s_sleep_ms(200);
    struct pollfd p = {.fd = rt_http_fd(f->h), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 1000), 1);
    served = rt_http_serve(f->h);
    while (served < 8 && s_now_ms() < deadline) {
        if (poll(&p, 1, 100) == 1)
            served += rt_http_serve(f->h);
    }
    assert_int_equal(served, 8);
    s_finish_many(f->h, true, fds, 8, r);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(r[i].status, 200);
        s_resp_free(&r[i]);
    }
}

static void test_timeout_503(void **state)
{
    s_fix_t *f = *state;
    s_resp_t r;
    rt_http_set_timeout_ms(f->h, 300);
    int calls = f->st.calls;
    int64_t t0 = s_now_ms();
    s_finish(f->h, false, s_request(f->port, "GET", "/metrics", NULL, NULL, 0), &r);
    int64_t dt = s_now_ms() - t0;
    assert_int_equal(r.status, 503);
    assert_true(dt >= 250 && dt < 3000);
    s_resp_free(&r);
    /* The request left the mailbox: serving now calls nothing. */
    assert_int_equal(rt_http_serve(f->h), 0);
    assert_int_equal(f->st.calls, calls);

    /* A handler slower than the timeout: the client gets 503 while it runs, and the
     * response it builds afterwards is dropped (freed by the loop). */
    f->st.sleep_ms = 700;
    int fd = s_request(f->port, "GET", "/api/slow", NULL, NULL, 0);
    struct pollfd p = {.fd = rt_http_fd(f->h), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(rt_http_serve(f->h), 1);
    s_finish(f->h, false, fd, &r);
    assert_int_equal(r.status, 503);
    s_resp_free(&r);

    /* Back to normal service. */
    rt_http_set_timeout_ms(f->h, RT_HTTP_TIMEOUT_MS);
    s_finish(f->h, true, s_request(f->port, "GET", "/metrics", NULL, NULL, 0), &r);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
}

static void test_destroy_in_flight(void **state)
{
    (void)state;
    int fds_before = s_count_fds();
    s_state_t st = {0};
    rt_http_t *h = rt_http_new("127.0.0.1:0", NULL, s_handler, &st);
    assert_non_null(h);
    int fd = s_request(rt_http_port(h), "GET", "/metrics", NULL, NULL, 0);
    struct pollfd p = {.fd = rt_http_fd(h), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1); /* the request waits in the mailbox */
    int64_t t0 = s_now_ms();
    rt_http_destroy(&h);
    assert_null(h);
    assert_true(s_now_ms() - t0 < RT_HTTP_TIMEOUT_MS);
    s_resp_t r;
    s_finish(NULL, false, fd, &r);
    assert_true(r.eof_only || r.status == 503);
    s_resp_free(&r);
    assert_int_equal(st.calls, 0);
    assert_int_equal(s_count_fds(), fds_before);
    rt_http_destroy(&h); /* idempotent */
    rt_http_destroy(NULL);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    s_state_t st = {0};
    const char *bad[] = {"",
                         "9187",
                         "127.0.0.1",
                         "127.0.0.1:",
                         ":9187",
                         "127.0.0.1:99999",
                         "127.0.0.1:12a",
                         "::1:9187",
                         "[::1]9187",
                         "no.such.host.invalid:9187",
                         "127.0.0.1:123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rt_http_t *h = rt_http_new(bad[i], NULL, s_handler, &st);
        if (h)
            fail_msg("rt_http_new(\"%s\") should fail", bad[i]);
    }
    /* A port in use. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_null(rt_http_new(addr, NULL, s_handler, &st));
    close(fd);
    /* Other accepted spellings. */
    rt_http_t *h = rt_http_new("localhost:0", NULL, s_handler, &st);
    assert_non_null(h);
    rt_http_destroy(&h);
    h = rt_http_new("*:0", NULL, s_handler, &st);
    assert_non_null(h);
    rt_http_destroy(&h);
}

static void test_query_param(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(rt_http_query_param("a=1&name=x%20y&b", "name", out, sizeof out), 0);
    assert_string_equal(out, "x y");
    assert_int_equal(rt_http_query_param("a=1&name=x%20y&b", "b", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(rt_http_query_param("a=1&b=", "b", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(rt_http_query_param("na=1&name2=2&name=3", "name", out, sizeof out), 0);
    assert_string_equal(out, "3");
    assert_int_equal(rt_http_query_param("x=a+b%2B%2b", "x", out, sizeof out), 0);
    assert_string_equal(out, "a b++");
    assert_int_equal(rt_http_query_param("", "x", out, sizeof out), RT_ENOTFOUND);
    assert_int_equal(rt_http_query_param(NULL, "x", out, sizeof out), RT_ENOTFOUND);
    assert_int_equal(rt_http_query_param("xx=1&=2", "x", out, sizeof out), RT_ENOTFOUND);
    assert_int_equal(rt_http_query_param("x=%", "x", out, sizeof out), RT_EINVAL);
    assert_int_equal(rt_http_query_param("x=%4", "x", out, sizeof out), RT_EINVAL);
    assert_int_equal(rt_http_query_param("x=%zz", "x", out, sizeof out), RT_EINVAL);
    assert_int_equal(rt_http_query_param("x=%00", "x", out, sizeof out), RT_EINVAL);
    assert_int_equal(rt_http_query_param("x=0123456789abcdef", "x", out, sizeof out), RT_EINVAL);
    assert_int_equal(rt_http_query_param("x=0123456789abcde", "x", out, sizeof out), 0);
    assert_string_equal(out, "0123456789abcde");
}

/* ---- HTTPS */

static char s_tls_dir[512]; /* a temporary directory for certificates and keys */

/* Writes text to name in s_tls_dir (made on first use) with mode; returns its path in
 * path (size bytes). */
static const char *s_tls_file(const char *name, const char *text, mode_t mode, char *path,
                              size_t size)
{
    if (!s_tls_dir[0]) {
        const char *base = getenv("RT_TMPDIR");
        mkdir(base && *base ? base : "/tmp", 0755);
        snprintf(s_tls_dir, sizeof s_tls_dir, "%s/test_http.XXXXXX", base && *base ? base : "/tmp");
        assert_non_null(mkdtemp(s_tls_dir));
    }
    snprintf(path, size, "%s/%s", s_tls_dir, name);
    if (text) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        chmod(path, mode);
    }
    return path;
}

#define S_CERT "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
#define S_KEY "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n"

/* --http-cert and --http-key: both or neither, readable PEM of the right kind, a key
 * that is not encrypted. */
static void test_tls_load(void **state)
{
    (void)state;
    char cert[600], key[600], other[600];
    s_tls_file("cert.pem", S_CERT, 0644, cert, sizeof cert);
    s_tls_file("key.pem", S_KEY, 0600, key, sizeof key);
    rt_http_tls_t tls = {0};
    assert_int_equal(rt_http_tls_load(&tls, NULL, NULL), RT_OK);
    assert_null(tls.cert);
    assert_null(tls.key);
    assert_int_equal(rt_http_tls_load(&tls, cert, NULL), RT_EINVAL);
    assert_int_equal(rt_http_tls_load(&tls, NULL, key), RT_EINVAL);
    s_tls_file("missing.pem", NULL, 0, other, sizeof other);
    assert_int_equal(rt_http_tls_load(&tls, other, key), RT_EINVAL);
    assert_int_equal(rt_http_tls_load(&tls, cert, other), RT_EINVAL);
    assert_int_equal(rt_http_tls_load(&tls, key, key), RT_EINVAL);   /* no certificate */
    assert_int_equal(rt_http_tls_load(&tls, cert, cert), RT_EINVAL); /* no key */
    assert_int_equal(rt_http_tls_load(&tls, s_tls_dir, key), RT_EINVAL);
    s_tls_file("empty.pem", "", 0600, other, sizeof other);
    assert_int_equal(rt_http_tls_load(&tls, cert, other), RT_EINVAL);
    s_tls_file("enc.pem",
               "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHs\n-----END ENCRYPTED PRIVATE KEY-----\n",
               0600, other, sizeof other);
    assert_int_equal(rt_http_tls_load(&tls, cert, other), RT_EINVAL);
    assert_null(tls.cert);
    assert_null(tls.key);

    /* A key after a parameters block, as openssl ecparam -genkey writes it. */
    s_tls_file("ec.pem",
               "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
               "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n",
               0600, other, sizeof other);
    assert_int_equal(rt_http_tls_load(&tls, cert, other), RT_OK);
    rt_http_tls_clear(&tls);

    assert_int_equal(rt_http_tls_load(&tls, cert, key), RT_OK);
    assert_string_equal(tls.cert, S_CERT);
    assert_string_equal(tls.key, S_KEY);
    s_state_t st = {0};
    assert_null(rt_http_new("127.0.0.1:0", &tls, s_handler, &st)); /* not a real pair */
    rt_http_tls_clear(&tls);
    assert_null(tls.cert);
    assert_null(tls.key);
    rt_http_tls_clear(&tls);
}

/* A self-signed pair made by openssl: the server speaks HTTPS only. curl --cacert gets
 * an answer; a plain HTTP request gets its connection closed without one. */
static void test_https(void **state)
{
    (void)state;
    char cert[600], key[600], cmd[2048];
    s_tls_file("real-cert.pem", NULL, 0, cert, sizeof cert);
    s_tls_file("real-key.pem", NULL, 0, key, sizeof key);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
             "-keyout '%s' -out '%s' 2>/dev/null",
             key, cert);
    assert_int_equal(system(cmd), 0);
    rt_http_tls_t tls = {0};
    assert_int_equal(rt_http_tls_load(&tls, cert, key), RT_OK);
    s_state_t st = {0};
    rt_http_t *h = rt_http_new("127.0.0.1:0", &tls, s_handler, &st);
    rt_http_tls_clear(&tls); /* the server has its own copy */
    assert_non_null(h);
    int port = rt_http_port(h);

    s_resp_t r;
    s_finish(h, true, s_request(port, "GET", "/metrics", NULL, NULL, 0), &r);
    assert_true(r.eof_only);
    s_resp_free(&r);
    assert_int_equal(st.calls, 0);

    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 10 --cacert '%s' -w ' HTTP %%{http_code}' "
             "https://127.0.0.1:%d/metrics 2>&1",
             cert, port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096] = "";
    size_t n = 0;
    int64_t deadline = s_now_ms() + 15000;
    for (bool eof = false; !eof && s_now_ms() < deadline;) {
        struct pollfd pf[2] = {{.fd = rt_http_fd(h), .events = POLLIN},
                               {.fd = fileno(p), .events = POLLIN}};
        if (poll(pf, 2, 100) <= 0)
            continue;
        if (pf[0].revents & POLLIN)
            rt_http_serve(h);
        if (pf[1].revents & (POLLIN | POLLHUP)) {
            ssize_t got = read(fileno(p), out + n, sizeof out - 1 - n);
            eof = got <= 0;
            n += got > 0 ? (size_t)got : 0;
        }
    }
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    if (!strstr(out, "rt_test_requests_total 1") || !strstr(out, "HTTP 200"))
        fail_msg("curl over HTTPS said: %s", out);
    assert_int_equal(st.calls, 1);
    rt_http_destroy(&h);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_tls_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_ok, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dashboard_page, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_query_and_body, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cross_site_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_token, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_host_checked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_many_clients_one_serve, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_503, s_setup, s_teardown),
        cmocka_unit_test(test_destroy_in_flight),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_tls_load),
        cmocka_unit_test(test_https),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
