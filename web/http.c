/* web/http.c - HTTP(S) server threads (libmicrohttpd) answered on the daemon's event loop. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dashboard.h"

#include "log.h"

/* Past this many body bytes (declared or received) the connection is closed at once;
 * below it an oversized body is read and dropped so the 413 reaches the client. */
#define S_DISCARD_LIMIT (1024u * 1024)
#define S_MAX_CONNECTIONS 64
#define S_MAX_PER_CLIENT 16
#define S_CONNECTION_TIMEOUT_S 10
#define S_TOKEN_MIN 16
#define S_PEM_MAX (1u << 20)
#define S_WARN_EVERY_MS 10000

enum { S_QUEUED, S_TAKEN, S_DONE, S_ABANDONED };

/* A request handed to the event loop. Owned by the connection thread while queued or
 * done; by rt_http_serve once abandoned (the connection thread gave up waiting). */
typedef struct s_job_t {
    struct s_job_t *next;
    int state;    /* S_QUEUED .. S_ABANDONED, under the mailbox lock */
    char *method; /* owned copies */
    char *path;
    char *query;
    rt_buf_t body;        /* request body */
    int64_t queued_at_us; /* monotonic time it entered the mailbox */
    bool authorized;      /* it carried the server's token */
    rt_http_response_t resp;
    char content_type[128]; /* copied from resp.content_type after the handler */
} s_job_t;

/* Per-request state of a connection thread, from the URI callback to completion. */
typedef struct {
    char *uri;       /* the raw request target, with the query */
    bool started;    /* the first access call (headers) was seen */
    bool too_big;    /* the body passed RT_HTTP_MAX_BODY: answer 413 */
    size_t received; /* body bytes received, kept or not */
    rt_buf_t body;   /* body bytes kept */
} s_ctx_t;

struct rt_http_t {
    struct MHD_Daemon *mhd;
    int efd;                       /* eventfd: requests wait in the mailbox */
    int port;                      /* TCP port listened on */
    rt_http_handler_fn fn;         /* the handler, called by rt_http_serve */
    void *arg;                     /* its argument */
    pthread_mutex_t lock;          /* guards the fields below and every job's state */
    pthread_cond_t cond;           /* signalled when jobs are done or on stop */
    s_job_t *head;                 /* queued jobs, oldest first */
    s_job_t **tailp;               /* where the next job is linked */
    bool stopping;                 /* rt_http_destroy started: answer 503 */
    int timeout_ms;                /* how long a connection thread waits */
    char *token;                   /* routes that change state need it; NULL: refused */
    const rt_http_route_t *routes; /* rt_http_new_routes: the table and its arg */
    size_t nroutes;
    void *route_arg;
    char host[256];    /* the host name listened on, "" for an address or "*" */
    rt_http_tls_t tls; /* HTTPS: copies of the certificate and key, empty for HTTP */
};

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_job_free(s_job_t *job)
{
    if (!job)
        return;
    free(job->method);
    free(job->path);
    free(job->query);
    rt_buf_free(&job->body);
    rt_buf_free(&job->resp.body);
    free(job);
}

/* Warnings from connection threads, at most one per S_WARN_EVERY_MS: a client that
 * provokes one per request must not flood the log. The first after a quiet spell says
 * how many were left out. */
static void s_warn(const char *fmt, ...) RT_PRINTF(1, 2);
static void s_warn(const char *fmt, ...)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t last_us;
    static unsigned long dropped;
    pthread_mutex_lock(&lock);
    int64_t now = s_mono_us();
    bool show = last_us == 0 || now - last_us >= (int64_t)S_WARN_EVERY_MS * 1000;
    unsigned long left_out = dropped;
    if (show) {
        last_us = now;
        dropped = 0;
    } else {
        dropped++;
    }
    pthread_mutex_unlock(&lock);
    if (!show)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (left_out)
        rt_warn("http: %s (and %lu warnings left out before it)", line, left_out);
    else
        rt_warn("http: %s", line);
}

static void s_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    s_warn("%s", line);
}

/* Queues a response built from (data, len) with the usual headers. With owned, data is
 * malloc'd and freed by libmicrohttpd. */
static enum MHD_Result s_send(struct MHD_Connection *conn, int status, const char *ctype,
                              const char *allow, char *data, size_t len, bool owned)
{
    struct MHD_Response *r;
    if (len == 0) {
        if (owned)
            free(data);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(len, data,
                                            owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
        if (!r && owned)
            free(data);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                            "frame-ancestors 'none'");
    if (allow && *allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_send_text(struct MHD_Connection *conn, int status, const char *text)
{
    return s_send(conn, status, "text/plain; charset=utf-8", NULL, (char *)text, strlen(text),
                  false);
}

/* True when a state-changing request comes from a page of another site. */
static bool s_cross_site(struct MHD_Connection *conn, const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "OPTIONS") == 0)
        return false;
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return true;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return false;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    const char *rest = NULL;
    if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    return !rest || !host || strcmp(rest, host) != 0;
}

/* True when the request carries "Authorization: Bearer TOKEN" with the server's token
 * (compared in constant time). */
static bool s_authorized(rt_http_t *self, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *given = auth + 7;
    bool ok = false;
    pthread_mutex_lock(&self->lock);
    if (self->token && strlen(given) == strlen(self->token)) {
        unsigned char diff = 0;
        for (size_t i = 0; self->token[i]; i++)
            diff |= (unsigned char)(given[i] ^ self->token[i]);
        ok = diff == 0;
    }
    pthread_mutex_unlock(&self->lock);
    return ok;
}

/* True when the Host header names this server as an IP address, "localhost" or the
 * host name it listens on: a page served by another name that resolves here (DNS
 * rebinding) is refused. */
static bool s_host_ok(const rt_http_t *self, struct MHD_Connection *conn)
{
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host || !*host)
        return false;
    char name[256];
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        return end && (end[1] == '\0' || end[1] == ':'); /* an IPv6 literal */
    }
    n = strcspn(host, ":");
    if (n >= sizeof name)
        return false;
    memcpy(name, host, n);
    name[n] = '\0';
    if (strcasecmp(name, "localhost") == 0 || (self->host[0] && strcasecmp(name, self->host) == 0))
        return true;
    struct in_addr a;
    return inet_pton(AF_INET, name, &a) == 1;
}

/* Hands the request to the event loop and waits for its answer; queues the response. */
static enum MHD_Result s_dispatch(rt_http_t *self, struct MHD_Connection *conn, s_ctx_t *ctx,
                                  const char *url, const char *method)
{
    s_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return s_send_text(conn, 500, "out of memory\n");
    const char *q = strchr(ctx->uri ? ctx->uri : "", '?');
    job->method = strdup(method);
    job->path = strdup(url);
    job->query = strdup(q ? q + 1 : "");
    if (!job->method || !job->path || !job->query) {
        s_job_free(job);
        return s_send_text(conn, 500, "out of memory\n");
    }
    char *hash = strchr(job->query, '#');
    if (hash)
        *hash = '\0';
    job->body = ctx->body;
    job->authorized = s_authorized(self, conn);
    rt_buf_init(&ctx->body);

    pthread_mutex_lock(&self->lock);
    if (self->stopping) {
        pthread_mutex_unlock(&self->lock);
        s_job_free(job);
        return s_send_text(conn, 503, "shutting down\n");
    }
    job->state = S_QUEUED;
    job->queued_at_us = s_mono_us();
    *self->tailp = job;
    self->tailp = &job->next;
    int timeout_ms = self->timeout_ms;
    pthread_mutex_unlock(&self->lock);

    uint64_t one = 1;
    if (write(self->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        s_warn("cannot signal the event loop: %s", strerror(errno));

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->lock);
    while (job->state != S_DONE && !self->stopping) {
        if (pthread_cond_timedwait(&self->cond, &self->lock, &deadline) == ETIMEDOUT)
            break;
    }
    if (job->state == S_DONE) {
        pthread_mutex_unlock(&self->lock);
        rt_http_response_t *r = &job->resp;
        char *data = r->body.data;
        size_t len = r->body.len;
        r->body.data = NULL;
        rt_buf_free(&r->body);
        enum MHD_Result rc = s_send(conn, r->status, job->content_type, r->allow, data, len, true);
        s_job_free(job);
        return rc;
    }
    bool stopping = self->stopping;
    bool queued = job->state == S_QUEUED;
    if (queued) {
        s_job_t **pp = &self->head;
        while (*pp != job)
            pp = &(*pp)->next;
        *pp = job->next;
        if (self->tailp == &job->next)
            self->tailp = pp;
    } else {
        job->state = S_ABANDONED; /* the loop is running the handler: it frees the job */
    }
    pthread_mutex_unlock(&self->lock);
    if (queued)
        s_job_free(job);
    if (!stopping)
        s_warn("%s %s not answered by the event loop within %d ms", method, url, timeout_ms);
    return s_send_text(conn, 503, stopping ? "shutting down\n" : "the daemon is busy\n");
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version;
    rt_http_t *self = cls;
    s_ctx_t *ctx = *con_cls;
    if (!ctx)
        return MHD_NO;
    if (!ctx->started) {
        ctx->started = true;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > S_DISCARD_LIMIT)
            return s_send_text(conn, 413, "request body too large\n");
        return MHD_YES;
    }
    if (*upload_size > 0) {
        ctx->received += *upload_size;
        if (ctx->received > S_DISCARD_LIMIT)
            return MHD_NO;
        if (ctx->received > RT_HTTP_MAX_BODY) {
            ctx->too_big = true;
            rt_buf_free(&ctx->body);
        } else {
            rt_buf_append(&ctx->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (ctx->too_big)
        return s_send_text(conn, 413, "request body too large\n");
    if (rt_buf_error(&ctx->body) < 0)
        return s_send_text(conn, 500, "out of memory\n");
    if (!s_host_ok(self, conn))
        return s_send_text(conn, 421, "this server does not answer for that Host\n");
    if (s_cross_site(conn, method))
        return s_send_text(conn, 403, "cross-site request refused\n");
    return s_dispatch(self, conn, ctx, url, method);
}

static void *s_uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    s_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx && !(ctx->uri = strdup(uri))) {
        free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    s_ctx_t *ctx = *con_cls;
    if (!ctx)
        return;
    free(ctx->uri);
    rt_buf_free(&ctx->body);
    free(ctx);
    *con_cls = NULL;
}

/* Splits "ADDR:PORT" / "[V6]:PORT" / "*:PORT" into host (NULL for every interface) and
 * port text. 0, or RT_EINVAL. */
static int s_split(const char *addr_port, char *host, size_t hsize, char *port, size_t psize,
                   bool *any)
{
    const char *colon;
    const char *h = addr_port;
    size_t hlen;
    if (*h == '[') {
        const char *end = strchr(h, ']');
        if (!end || end[1] != ':')
            return RT_EINVAL;
        h++;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon)
            return RT_EINVAL;
        hlen = (size_t)(colon - h);
        if (memchr(h, ':', hlen))
            return RT_EINVAL; /* an IPv6 address needs brackets */
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (hlen == 0 || hlen >= hsize || plen == 0 || plen > 5 || plen >= psize)
        return RT_EINVAL;
    for (size_t i = 0; i < plen; i++)
        if (p[i] < '0' || p[i] > '9')
            return RT_EINVAL;
    if (atoi(p) > 65535)
        return RT_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, p, plen + 1);
    *any = strcmp(host, "*") == 0;
    return RT_OK;
}

/* A listening socket on addr_port, or -1 (logged). Sets *port_out. */
static int s_listen(const char *addr_port, int *port_out)
{
    char host[256], port[8];
    bool any = false;
    if (s_split(addr_port, host, sizeof host, port, sizeof port, &any) < 0) {
        rt_error("http: listen address \"%s\" is not ADDR:PORT (e.g. 127.0.0.1:9187, "
                 "[::1]:9187, *:9187)",
                 addr_port);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai != 0) {
        rt_error("http: cannot resolve listen address \"%s\": %s", addr_port, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        rt_error("http: cannot listen on %s: %s", addr_port, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        char ps[16];
        if (getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, ps, sizeof ps, NI_NUMERICSERV) == 0)
            *port_out = atoi(ps);
    }
    return fd;
}

/* True when text has a PEM block whose BEGIN line names marker ("CERTIFICATE" also
 * matches "TRUSTED CERTIFICATE", "PRIVATE KEY" also "EC PRIVATE KEY" after an "EC
 * PARAMETERS" block). */
static bool s_has_pem(const char *text, const char *marker)
{
    for (const char *b = strstr(text, "-----BEGIN "); b; b = strstr(b + 1, "-----BEGIN ")) {
        const char *eol = strchr(b, '\n');
        const char *m = strstr(b, marker);
        if (m && (!eol || m < eol))
            return true;
    }
    return false;
}

/* Reads the PEM file path of flag into *out: a certificate, or with key a private key
 * (not encrypted). RT_OK or RT_EINVAL (logged). */
static int s_read_pem(const char *flag, const char *path, bool key, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rt_error("http: cannot read %s %s: %s", flag, path, strerror(errno));
        return RT_EINVAL;
    }
    struct stat st;
    char *text = NULL;
    size_t size = 0;
    int rc = RT_EINVAL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > (off_t)S_PEM_MAX) {
        rt_error("http: %s %s is not a PEM file (a regular file of 1 byte to 1 MiB)", flag, path);
        goto cleanup;
    }
    size = (size_t)st.st_size;
    if (!(text = malloc(size + 1)) || fread(text, 1, size, f) != size) {
        rt_error("http: cannot read %s %s: %s", flag, path, text ? strerror(errno) : "no memory");
        goto cleanup;
    }
    text[size] = '\0';
    const char *marker = key ? "PRIVATE KEY" : "CERTIFICATE";
    if (key && strstr(text, "ENCRYPTED")) {
        rt_error("http: %s %s is encrypted: give the key unencrypted (openssl pkey -in %s -out "
                 "NEW), in a file only this daemon's user can read",
                 flag, path, path);
        goto cleanup;
    }
    if (!s_has_pem(text, marker)) {
        rt_error("http: %s %s holds no PEM %s (-----BEGIN ...%s-----)", flag, path,
                 key ? "private key" : "certificate", marker);
        goto cleanup;
    }
    if (key && (st.st_mode & 0077))
        rt_warn("http: the key file %s can be read by others (mode %03o); chmod 600 it", path,
                (unsigned)(st.st_mode & 0777));
    *out = text;
    text = NULL;
    rc = RT_OK;
cleanup:
    if (text) {
        explicit_bzero(text, size);
        free(text);
    }
    fclose(f);
    return rc;
}

int rt_http_tls_load(rt_http_tls_t *tls, const char *cert_path, const char *key_path)
{
    if (!cert_path && !key_path)
        return RT_OK;
    if (!cert_path || !key_path) {
        rt_error("http: --http-cert FILE and --http-key FILE go together: give both for "
                 "HTTPS, or neither for plain HTTP");
        return RT_EINVAL;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        rt_error("http: --http-cert %s: this libmicrohttpd was built without TLS, so it "
                 "cannot serve HTTPS",
                 cert_path);
        return RT_EINVAL;
    }
    if (s_read_pem("--http-cert", cert_path, false, &tls->cert) != RT_OK ||
        s_read_pem("--http-key", key_path, true, &tls->key) != RT_OK) {
        rt_http_tls_clear(tls);
        return RT_EINVAL;
    }
    return RT_OK;
}

void rt_http_tls_clear(rt_http_tls_t *tls)
{
    if (tls->key)
        explicit_bzero(tls->key, strlen(tls->key));
    free(tls->key);
    free(tls->cert);
    tls->key = tls->cert = NULL;
}

rt_http_t *rt_http_new(const char *addr_port, const rt_http_tls_t *tls, rt_http_handler_fn fn,
                       void *arg)
{
    rt_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        rt_error("http: out of memory");
        return NULL;
    }
    self->fn = fn;
    self->arg = arg;
    self->efd = -1;
    self->tailp = &self->head;
    self->timeout_ms = RT_HTTP_TIMEOUT_MS;
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);

    int lfd = -1;
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        rt_error("http: eventfd: %s", strerror(errno));
        goto fail;
    }
    lfd = s_listen(addr_port, &self->port);
    if (lfd < 0)
        goto fail;
    char port[8];
    bool any = false;
    struct in_addr a4;
    if (s_split(addr_port, self->host, sizeof self->host, port, sizeof port, &any) != RT_OK ||
        any || inet_pton(AF_INET, self->host, &a4) == 1)
        self->host[0] = '\0'; /* an address: the Host header must be an address too */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem https[3] = {{MHD_OPTION_END, 0, NULL}};
    if (tls && tls->cert && tls->key) {
        if (!(self->tls.cert = strdup(tls->cert)) || !(self->tls.key = strdup(tls->key))) {
            rt_error("http: out of memory");
            close(lfd);
            goto fail;
        }
        flags |= MHD_USE_TLS;
        https[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, self->tls.key};
        https[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, self->tls.cert};
        https[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    self->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, s_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_logger, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd, MHD_OPTION_URI_LOG_CALLBACK, s_uri_logger, self,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)S_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)S_MAX_PER_CLIENT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S_CONNECTION_TIMEOUT_S, MHD_OPTION_ARRAY, https,
        MHD_OPTION_END);
    if (!self->mhd) {
        rt_error("http: cannot start the %s server on %s%s", self->tls.cert ? "HTTPS" : "HTTP",
                 addr_port, self->tls.cert ? " (is --http-key the key of --http-cert?)" : "");
        close(lfd);
        goto fail;
    }
    return self;
fail:
    rt_http_tls_clear(&self->tls);
    if (self->efd >= 0)
        close(self->efd);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self);
    return NULL;
}

static void s_routed(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    const rt_http_t *self = arg;
    rt_http_route(self->routes, self->nroutes, self->route_arg, req, resp);
}

rt_http_t *rt_http_new_routes(const char *addr_port, const rt_http_tls_t *tls,
                              const rt_http_route_t *routes, size_t nroutes, void *arg)
{
    rt_http_t *self = rt_http_new(addr_port, tls, s_routed, NULL);
    if (!self)
        return NULL;
    /* Requests are handled by rt_http_serve, on the caller's thread: none before this. */
    self->routes = routes;
    self->nroutes = nroutes;
    self->route_arg = arg;
    self->arg = self;
    return self;
}

void rt_http_destroy(rt_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_http_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    /* Joins every connection thread; each answers 503 and unlinks its job first. It also
     * closes the listening socket. */
    MHD_stop_daemon(self->mhd);
    for (s_job_t *job = self->head, *next; job; job = next) {
        next = job->next;
        s_job_free(job);
    }
    close(self->efd);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self->token);
    rt_http_tls_clear(&self->tls);
    free(self);
    *self_p = NULL;
}

int rt_http_fd(const rt_http_t *self)
{
    return self->efd;
}

int rt_http_port(const rt_http_t *self)
{
    return self->port;
}

void rt_http_set_token(rt_http_t *self, const char *token)
{
    char *copy = token ? strdup(token) : NULL;
    pthread_mutex_lock(&self->lock);
    free(self->token);
    self->token = copy;
    pthread_mutex_unlock(&self->lock);
}

int rt_http_set_token_file(rt_http_t *self, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rt_error("http: cannot read the token file %s: %s", path, strerror(errno));
        return RT_EINVAL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
        rt_warn("http: the token file %s can be read by others (mode %03o); chmod 600 it", path,
                (unsigned)(st.st_mode & 0777));
    char line[512] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        p[--n] = '\0';
    if (!got || n < S_TOKEN_MIN) {
        rt_error("http: the token in %s is shorter than %d characters (e.g. head -c 32 "
                 "/dev/urandom | base64 > %s)",
                 path, S_TOKEN_MIN, path);
        return RT_EINVAL;
    }
    rt_http_set_token(self, p);
    return RT_OK;
}

void rt_http_set_timeout_ms(rt_http_t *self, int timeout_ms)
{
    pthread_mutex_lock(&self->lock);
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    pthread_mutex_unlock(&self->lock);
}

int rt_http_serve(rt_http_t *self)
{
    uint64_t count;
    while (read(self->efd, &count, sizeof count) == (ssize_t)sizeof count)
        ;
    pthread_mutex_lock(&self->lock);
    s_job_t *jobs = self->head;
    self->head = NULL;
    self->tailp = &self->head;
    for (s_job_t *job = jobs; job; job = job->next)
        job->state = S_TAKEN;
    pthread_mutex_unlock(&self->lock);
    if (!jobs)
        return 0;

    int n = 0;
    int64_t now = s_mono_us();
    for (s_job_t *job = jobs; job; job = job->next, n++) {
        rt_http_request_t req = {
            .method = job->method,
            .path = job->path,
            .query = job->query,
            .body = rt_buf_str(&job->body),
            .body_len = job->body.len,
            .queued_us = now - job->queued_at_us,
            .authorized = job->authorized,
            .token_set = self->token != NULL,
        };
        rt_http_response_t *resp = &job->resp;
        resp->status = 200;
        resp->content_type = "text/plain; charset=utf-8";
        resp->allow[0] = '\0';
        rt_buf_init(&resp->body);
        self->fn(self->arg, &req, resp);
        if (rt_buf_error(&resp->body) < 0) {
            rt_buf_free(&resp->body);
            rt_http_text(resp, 500, "out of memory");
        }
        if (resp->status < 100 || resp->status > 599) {
            rt_error("http: handler of %s %s set status %d", job->method, job->path, resp->status);
            rt_buf_reset(&resp->body);
            rt_http_text(resp, 500, "internal error");
        }
        snprintf(job->content_type, sizeof job->content_type, "%s",
                 resp->content_type ? resp->content_type : "application/octet-stream");
        resp->content_type = NULL;
        now = s_mono_us();
    }

    pthread_mutex_lock(&self->lock);
    for (s_job_t *job = jobs, *next; job; job = next) {
        next = job->next;
        job->next = NULL;
        if (job->state == S_ABANDONED)
            s_job_free(job);
        else
            job->state = S_DONE;
    }
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    return n;
}

void rt_http_text(rt_http_response_t *resp, int status, const char *fmt, ...)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    rt_buf_reset(&resp->body);
    va_list ap;
    va_start(ap, fmt);
    rt_buf_vprintf(&resp->body, fmt, ap);
    va_end(ap);
    rt_buf_putc(&resp->body, '\n');
}

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rt_http_query_param(const char *query, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    const char *p = query ? query : "";
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
            size_t n = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                char c = *v;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int hi = end - v >= 3 ? s_hex(v[1]) : -1;
                    int lo = end - v >= 3 ? s_hex(v[2]) : -1;
                    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                        return RT_EINVAL;
                    c = (char)(hi * 16 + lo);
                    v += 2;
                }
                if (n + 1 >= size)
                    return RT_EINVAL;
                out[n++] = c;
            }
            if (size == 0)
                return RT_EINVAL;
            out[n] = '\0';
            return RT_OK;
        }
        p = *end ? end + 1 : end;
    }
    return RT_ENOTFOUND;
}

void rt_http_route(const rt_http_route_t *routes, size_t nroutes, void *arg,
                   const rt_http_request_t *req, rt_http_response_t *resp)
{
    bool head = strcmp(req->method, "HEAD") == 0;
    for (size_t i = 0; i < nroutes; i++) {
        const rt_http_route_t *r = &routes[i];
        if (strcmp(r->path, req->path) != 0)
            continue;
        if (strcmp(r->method, req->method) == 0 || (head && strcmp(r->method, "GET") == 0)) {
            if (r->needs_token && !req->token_set)
                rt_http_text(resp, 403,
                             "%s %s is off: start the daemon with --http-token FILE to allow it",
                             req->method, req->path);
            else if (r->needs_token && !req->authorized)
                rt_http_text(resp, 401,
                             "%s %s needs the token of --http-token "
                             "(Authorization: Bearer TOKEN)",
                             req->method, req->path);
            else
                r->fn(arg, req, resp);
            return;
        }
    }
    char allow[sizeof resp->allow] = "";
    size_t used = 0;
    for (size_t i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].path, req->path) != 0)
            continue;
        int w =
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", routes[i].method);
        if (w < 0 || (size_t)w >= sizeof allow - used)
            break;
        used += (size_t)w;
        if (strcmp(routes[i].method, "GET") == 0) {
            w = snprintf(allow + used, sizeof allow - used, ", HEAD");
            if (w < 0 || (size_t)w >= sizeof allow - used)
                break;
            used += (size_t)w;
        }
    }
    if (used == 0) {
        rt_http_text(resp, 404, "not found: %s", req->path);
        return;
    }
    rt_http_text(resp, 405, "method %s not allowed on %s (allowed: %s)", req->method, req->path,
                 allow);
    memcpy(resp->allow, allow, sizeof resp->allow);
}

void rt_http_dashboard_page(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    resp->content_type = "text/html; charset=utf-8";
    rt_buf_append(&resp->body, rt_dashboard_html, rt_dashboard_html_len);
}

void rt_http_ping(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    resp->content_type = "application/json";
    rt_buf_printf(&resp->body, "{\"ok\":true,\"queued_us\":%" PRId64 "}", req->queued_us);
}
