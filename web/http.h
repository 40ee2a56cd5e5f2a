/* web/http.h - HTTP(S) server threads (libmicrohttpd) answered on the daemon's event loop. */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include "buf.h"
#include "config.h"
#include "rt.h"

/* The --http flags of a daemon's table (RT_CFG_OPT) for its options struct S, whose char *
 * fields http, http_token, http_cert and http_key they fill; token_help says what the
 * token guards. */
#define RT_HTTP_CFG_OPTS(S, token_help)                                                            \
    RT_CFG_OPT(S, "http", RT_CFG_STR, http, NULL, 0, 0, NULL, false, false,                        \
               "ADDR:PORT serving /metrics, /api/status and the dashboard (default: none)"),       \
        RT_CFG_OPT(S, "http-token", RT_CFG_STR, http_token, NULL, 0, 0, NULL, false, false,        \
                   token_help),                                                                    \
        RT_CFG_OPT(S, "http-cert", RT_CFG_STR, http_cert, NULL, 0, 0, NULL, false, false,          \
                   "serve --http as HTTPS only, with this PEM certificate (or chain); with "       \
                   "--http-key"),                                                                  \
        RT_CFG_OPT(S, "http-key", RT_CFG_STR, http_key, NULL, 0, 0, NULL, false, false,            \
                   "the unencrypted PEM private key of --http-cert")

/* Request bodies larger than this get 413. */
#define RT_HTTP_MAX_BODY (64u * 1024)
/* A request the event loop has not answered within this time gets 503. */
#define RT_HTTP_TIMEOUT_MS 2000

/* How it works: libmicrohttpd runs in its own threads (one listening thread and one
 * thread per connection, at most 64 connections). Those threads never touch daemon
 * state: each complete request is put in a mailbox (a mutex-protected list) and an
 * eventfd is signalled. The daemon polls that fd (rt_http_fd) in its event loop and,
 * when it is readable, calls rt_http_serve(), which runs the handler on the daemon's
 * thread for every waiting request and hands the responses back. A connection thread
 * waits at most the timeout (RT_HTTP_TIMEOUT_MS) for its answer, then answers 503.
 * Requests that change state (any method but GET, HEAD and OPTIONS) carrying an Origin
 * or Sec-Fetch-Site header of another site are refused with 403 before they reach the
 * mailbox, so a web page elsewhere cannot drive the API through a browser. A request
 * whose Host header is not an IP address, "localhost" or the host name listened on is
 * refused with 421 (DNS rebinding). Routes that change state need the server's token
 * (rt_http_set_token) as "Authorization: Bearer TOKEN"; without a token set they are
 * refused. At most 16 connections per client address, idle ones closed after 10 s.
 * With a certificate and key (rt_http_tls_load) the server speaks HTTPS only. */

typedef struct rt_http_t rt_http_t;

/* HTTPS: a certificate and its private key, as PEM text. Both NULL: plain HTTP. */
typedef struct {
    char *cert; /* the certificate, or a chain starting with it (PEM), owned */
    char *key;  /* its private key, unencrypted (PEM), owned */
} rt_http_tls_t;

/* Reads the files of --http-cert (cert_path) and --http-key (key_path) into tls, which
 * must be empty. Neither given (both NULL): tls stays empty, for plain HTTP. RT_OK, or
 * RT_EINVAL, logged naming the flag and the file: one given without the other, a file
 * that cannot be read, is empty, larger than 1 MiB or holds no PEM certificate or
 * private key, an encrypted key, or a libmicrohttpd built without TLS. A key file that
 * others can read is used, with a warning. Free with rt_http_tls_clear. */
int rt_http_tls_load(rt_http_tls_t *tls, const char *cert_path, const char *key_path) RT_WUR;

/* Frees what rt_http_tls_load read, overwriting the key first; tls is empty after.
 * Safe on an empty one. */
void rt_http_tls_clear(rt_http_tls_t *tls);

/* A request, valid during the handler call only. */
typedef struct {
    const char *method; /* "GET", "POST", ... as sent */
    const char *path;   /* URL path without the query, percent-decoded, e.g. "/api/status" */
    const char *query;  /* raw query string after '?', not decoded ("" if none);
                           read it with rt_http_query_param */
    const char *body;   /* the request body, NUL-terminated ("" if none) */
    size_t body_len;    /* bytes in body, at most RT_HTTP_MAX_BODY */
    int64_t queued_us;  /* time the request waited in the mailbox for rt_http_serve */
    bool authorized;    /* it carried "Authorization: Bearer TOKEN" with the server's token */
    bool token_set;     /* the server has a token (rt_http_set_token) */
} rt_http_request_t;

/* The response a handler fills. Starts as 200, text/plain, empty body. */
typedef struct {
    int status;               /* HTTP status code */
    const char *content_type; /* Content-Type; must stay valid until the handler returns */
    char allow[64];           /* Allow header for 405, or "" for none */
    rt_buf_t body;            /* the body: append to it (an allocation failure gives 500) */
} rt_http_response_t;

/* Called on the daemon's thread, from rt_http_serve, once per request. */
typedef void (*rt_http_handler_fn)(void *arg, const rt_http_request_t *req,
                                   rt_http_response_t *resp);

/* Listens on addr_port, "ADDR:PORT": ADDR an IPv4 address, a bracketed IPv6 address
 * ("[::1]:9187"), a host name, or "*" for every interface; PORT 0 picks a free port
 * (see rt_http_port). With tls (not NULL, not empty) it speaks HTTPS only, with that
 * certificate and key (copied: the caller may clear tls at once); a client speaking
 * plain HTTP to it gets its connection closed. Starts the server threads. fn and arg
 * are called by rt_http_serve. Returns NULL on failure, logged (malformed address,
 * address in use, a key that is not the certificate's, no memory). */
rt_http_t *rt_http_new(const char *addr_port, const rt_http_tls_t *tls, rt_http_handler_fn fn,
                       void *arg);

/* Stops accepting, answers 503 to every request still waiting for the event loop, stops
 * the server threads and frees self; clears *self_p. Safe with NULL or *self_p NULL. */
void rt_http_destroy(rt_http_t **self_p);

/* The fd to poll for reading (an eventfd): readable while requests wait for
 * rt_http_serve. Valid until rt_http_destroy. */
int rt_http_fd(const rt_http_t *self);

/* The TCP port listened on. */
int rt_http_port(const rt_http_t *self);

/* Sets the token that routes marked needs_token require (copied; NULL: none, so those
 * routes are refused). */
void rt_http_set_token(rt_http_t *self, const char *token);

/* rt_http_set_token with the token read from path: its first line, without surrounding
 * blanks, at least 16 characters. RT_OK, or RT_EINVAL (logged: unreadable, too short).
 * A file others can read is used with a warning. */
int rt_http_set_token_file(rt_http_t *self, const char *path) RT_WUR;

/* Sets how long a connection thread waits for the event loop before answering 503
 * (default RT_HTTP_TIMEOUT_MS). */
void rt_http_set_timeout_ms(rt_http_t *self, int timeout_ms);

/* Takes every waiting request, calls the handler for each on the caller's thread and
 * hands the responses back. Call when rt_http_fd is readable; harmless otherwise.
 * Returns the number of requests handled. */
int rt_http_serve(rt_http_t *self);

/* Sets status, text/plain and a one-line body (fmt, then a newline); for errors. */
void rt_http_text(rt_http_response_t *resp, int status, const char *fmt, ...) RT_PRINTF(3, 4);

/* Finds key in a raw query string ("a=1&name=x%20y") and writes its percent-decoded
 * value ('+' is a space) into out (size bytes with the NUL). A key given without '='
 * has the value "". Returns 0, RT_ENOTFOUND if absent, RT_EINVAL if the value is
 * malformed (bad %XX, a NUL byte) or does not fit. */
int rt_http_query_param(const char *query, const char *key, char *out, size_t size) RT_WUR;

/* A route for rt_http_route: method and exact path; GET routes also answer HEAD. */
typedef struct {
    const char *method;    /* "GET", "POST", ... */
    const char *path;      /* exact path, e.g. "/api/status" */
    rt_http_handler_fn fn; /* called with rt_http_route's arg */
    bool needs_token;      /* changes state: only with the server's token */
} rt_http_route_t;

/* Dispatches req to the first route whose method and path match. A known path with
 * another method gets 405 with an Allow header; an unknown path gets 404; a route that
 * needs the token gets 401 without it (403 when the server has none). */
void rt_http_route(const rt_http_route_t *routes, size_t nroutes, void *arg,
                   const rt_http_request_t *req, rt_http_response_t *resp);

/* rt_http_new whose handler is rt_http_route over routes (borrowed: a static table)
 * with arg. Same failures as rt_http_new. */
rt_http_t *rt_http_new_routes(const char *addr_port, const rt_http_tls_t *tls,
                              const rt_http_route_t *routes, size_t nroutes, void *arg);

/* Ready-made handlers shared by the daemons: the dashboard page (GET /), and the
 * connection test (POST /api/ping: {"ok":true,"queued_us":N}, the time the request
 * waited for the event loop). arg is unused. */
void rt_http_dashboard_page(void *arg, const rt_http_request_t *req, rt_http_response_t *resp);
void rt_http_ping(void *arg, const rt_http_request_t *req, rt_http_response_t *resp);

#endif
