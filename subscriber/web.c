/* subscriber/web.c - the subscriber's HTTP side: /metrics, /api/status and the dashboard.
 * Handlers run on the subscriber's event loop (rt_http_serve in main.c), so they read
 * the link's and apply's state directly. */
#include "web.h"

#include <inttypes.h>

#include "metrics.h"

typedef struct {
    rt_link_t *link;
    rt_apply_t *apply;
} s_web_t;

static s_web_t s_web; /* one HTTP server per subscriber process */

static void s_metrics(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    rt_metrics_subscriber_t m;
    rt_link_metrics(s_web.link, s_web.apply, &m);
    resp->content_type = RT_PROMETHEUS_CONTENT_TYPE;
    rt_metrics_subscriber(&resp->body, &m);
}

static void s_status(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    rt_metrics_subscriber_t m;
    rt_link_metrics(s_web.link, s_web.apply, &m);
    resp->content_type = "application/json";
    rt_metrics_subscriber_json(&resp->body, &m);
}

static const rt_http_route_t s_routes[] = {
    {"GET", "/", rt_http_dashboard_page, false},
    {"GET", "/metrics", s_metrics, false},
    {"GET", "/api/status", s_status, false},
    {"POST", "/api/ping", rt_http_ping, false},
};

rt_http_t *rt_subscriber_web_new(const char *addr_port, const rt_http_tls_t *tls, rt_link_t *link,
                                 rt_apply_t *apply)
{
    s_web.link = link;
    s_web.apply = apply;
    return rt_http_new_routes(addr_port, tls, s_routes, sizeof s_routes / sizeof s_routes[0],
                              &s_web);
}
