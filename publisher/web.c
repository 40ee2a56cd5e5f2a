/* publisher/web.c - the publisher's HTTP side: /metrics, /api/status, pause/resume, dashboard.
 *
 * Handlers run on the event loop's thread (rt_http_serve), so they read the stream
 * and capture directly; admin verbs go through rt_admin_call, the same code that
 * answers rtctl. */
#include "web.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "metrics.h"
#include "status_json.h"
#include "wire.h"

typedef struct {
    rt_stream_t *stream;
    rt_capture_t *capture;
} s_web_t;

static s_web_t s_web; /* one HTTP server per publisher process */

/* The STATUS reply, decoded into *st (cleared by the caller with rt_status_clear). */
static int s_status(rt_status_t *st)
{
    rt_msg_t q = {.type = RT_MSG_STATUS};
    void *r;
    size_t n;
    int rc = rt_admin_call(s_web.stream, &q, &r, &n);
    if (rc < 0)
        return rc;
    rc = rt_status_decode(r, n, st);
    free(r);
    return rc;
}

static void s_api_status(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    rt_status_t st;
    memset(&st, 0, sizeof st);
    if (s_status(&st) < 0) {
        rt_http_text(resp, 500, "status unavailable");
        return;
    }
    resp->content_type = "application/json";
    rt_status_json(&resp->body, &st);
    rt_status_clear(&st);
}

static void s_metrics(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    (void)req;
    rt_status_t st;
    memset(&st, 0, sizeof st);
    if (s_status(&st) < 0) {
        rt_http_text(resp, 500, "status unavailable");
        return;
    }
    /* A relay has no capture: its status says what it took from its publisher. */
    rt_capture_stats_t cs = {0};
    if (s_web.capture)
        cs = rt_capture_stats(s_web.capture);
    else
        cs = (rt_capture_stats_t){.txns = st.captured_txns,
                                  .rows = st.captured_rows,
                                  .connected = st.capture_state == RT_CAPTURE_STREAMING,
                                  .blocked = st.capture_state == RT_CAPTURE_BLOCKED};
    rt_metrics_pub_sub_t *subs = calloc(st.nsubs ? st.nsubs : 1, sizeof *subs);
    if (!subs) {
        rt_status_clear(&st);
        rt_http_text(resp, 500, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < st.nsubs; i++) {
        subs[i].name = st.subs[i].name;
        subs[i].acked_seq = st.subs[i].acked_seq;
        subs[i].lag_records =
            st.head_seq > st.subs[i].acked_seq ? st.head_seq - st.subs[i].acked_seq : 0;
        subs[i].up = st.subs[i].state != RT_SUB_OFFLINE;
        subs[i].error = st.subs[i].state == RT_SUB_ERROR;
        subs[i].lag_seconds = st.subs[i].lag_ms >= 0 ? (double)st.subs[i].lag_ms / 1000.0 : 0;
        subs[i].copy = st.subs[i].copy;
    }
    rt_metrics_publisher_t m = {.captured_txns = cs.txns,
                                .captured_rows = cs.rows,
                                .captured_sequences = cs.sequences,
                                .captured_ddl = cs.ddl,
                                .filtered_txns = cs.filtered_txns,
                                .skipped_txns = cs.skipped_txns,
                                .streamed_txns = cs.streamed_txns,
                                .streaming_txns = cs.streaming_txns,
                                .source_connected = cs.connected,
                                .outbox_full = cs.blocked,
                                .outbox_records = st.records,
                                .outbox_bytes = st.outbox_bytes,
                                .outbox_limit_bytes =
                                    st.outbox_limit_bytes > 0 ? (uint64_t)st.outbox_limit_bytes : 0,
                                .outbox_commits = cs.commits,
                                .outbox_commit_records = cs.stored_records,
                                .first_seq = st.first_seq,
                                .head_seq = st.head_seq,
                                .received_lsn = cs.received_lsn,
                                .confirmed_lsn = cs.confirmed_lsn,
                                .retained_wal_bytes = st.retained_wal_bytes,
                                .source_lag_bytes = st.source_lag_bytes,
                                .source_lag_ms = st.source_lag_ms,
                                .bad_frames = rt_stream_bad_frames(s_web.stream),
                                .dropped_peers = rt_stream_dropped_peers(s_web.stream),
                                .nsubs = st.nsubs,
                                .subs = subs};
    resp->content_type = RT_PROMETHEUS_CONTENT_TYPE;
    rt_metrics_publisher(&resp->body, &m);
    free(subs);
    rt_status_clear(&st);
}

static void s_admin(const rt_http_request_t *req, rt_http_response_t *resp, int type)
{
    char name[128];
    if (rt_http_query_param(req->query, "name", name, sizeof name) < 0) {
        rt_http_text(resp, 400, "name=SUBSCRIBER is required");
        return;
    }
    rt_msg_t q = {.type = type, .name = name};
    void *r;
    size_t n;
    if (rt_admin_call(s_web.stream, &q, &r, &n) < 0) {
        rt_http_text(resp, 500, "no answer");
        return;
    }
    rt_msg_t a;
    memset(&a, 0, sizeof a);
    int rc = rt_msg_decode(r, n, &a);
    free(r);
    resp->content_type = "application/json";
    if (rc == 0 && a.type == RT_MSG_OK) {
        rt_buf_puts(&resp->body, "{\"ok\":true,\"text\":");
        rt_buf_json_string(&resp->body, a.text ? a.text : "");
    } else {
        resp->status = rc == 0 && a.code == RT_ENOTFOUND ? 404 : 500;
        rt_buf_puts(&resp->body, "{\"ok\":false,\"error\":");
        rt_buf_json_string(&resp->body, rc == 0 && a.text ? a.text : "malformed reply");
    }
    rt_buf_putc(&resp->body, '}');
    if (rc == 0)
        rt_msg_clear(&a);
}

static void s_pause(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    s_admin(req, resp, RT_MSG_PAUSE);
}

static void s_resume(void *arg, const rt_http_request_t *req, rt_http_response_t *resp)
{
    (void)arg;
    s_admin(req, resp, RT_MSG_RESUME);
}

static const rt_http_route_t s_routes[] = {
    {"GET", "/", rt_http_dashboard_page, false}, {"GET", "/metrics", s_metrics, false},
    {"GET", "/api/status", s_api_status, false}, {"POST", "/api/pause", s_pause, true},
    {"POST", "/api/resume", s_resume, true},     {"POST", "/api/ping", rt_http_ping, false},
};

rt_http_t *rt_publisher_web_new(const char *addr_port, const rt_http_tls_t *tls,
                                rt_stream_t *stream, rt_capture_t *capture)
{
    s_web.stream = stream;
    s_web.capture = capture;
    return rt_http_new_routes(addr_port, tls, s_routes, sizeof s_routes / sizeof s_routes[0],
                              &s_web);
}
