/* subscriber/web.c - the subscriber's HTTP side: /metrics, /api/status and the dashboard.
 * Handlers run on the subscriber's thread (rt_http_serve in main.c's event loop, or in the
 * initial copy's waits), so they read the link's, apply's and copy's state directly. */
#include "web.h"

#include <inttypes.h>

#include "metrics.h"

typedef struct {
    rt_link_t *link;
    rt_apply_t *apply;
    const rt_initcopy_state_t *copy;
} s_web_t;

static s_web_t s_web; /* one HTTP server per subscriber process */

/* The figures of the moment; m->copy is valid until the handler returns. */
static void s_figures(rt_metrics_subscriber_t *m)
{
    rt_link_metrics(s_web.link, s_web.apply, m);
    if (s_web.copy && s_web.copy->copying) {
        m->state = RT_SUB_COPYING;
        m->copy = &s_web.copy->progress;
    }
}

static void s_metrics(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    rt_metrics_subscriber_t m;
    s_figures(&m);
    resp->content_type = RT_PROMETHEUS_CONTENT_TYPE;
    rt_metrics_subscriber(&resp->body, &m);
}

static void s_status(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    rt_metrics_subscriber_t m;
    s_figures(&m);
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
                                 rt_apply_t *apply, const rt_initcopy_state_t *copy)
{
    s_web.link = link;
    s_web.apply = apply;
    s_web.copy = copy;
    return rt_http_new_routes(addr_port, tls, s_routes, sizeof s_routes / sizeof s_routes[0],
                              &s_web);
}
