/* relay/main.c - rt-relay: subscribes to a publisher (or another relay) like a subscriber,
 * keeps its own LMDB outbox with the same seqs, and serves the same protocol to its own
 * subscribers (schemas/protocol.md, "Relays"). Flags, wiring, the event loop and exit
 * codes. */
#include <czmq.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "curve.h"
#include "daemon.h"
#include "log.h"
#include "outbox.h"
#include "sock.h"
#include "stream.h"
#include "upstream.h"
#include "web.h"

typedef struct {
    char *publisher;
    char *publisher_key;
    char *pub_upstream;
    char *outbox;
    char *name;
    char *listen;
    char *pub;
    char *config;
    char *cert;
    char *allow;
    char *admin;
    char *http;
    char *http_token;
    char *http_cert;
    char *http_key;
    bool insecure;
    int64_t log_level;
    int64_t batch_bytes;
    int64_t max_outbox_mb;
    int64_t retention_seconds;
    int64_t pub_hwm;
} s_opts_t;

#define OPT(k, t, f, d, lo, hi, ch, req, rel, h)                                                   \
    RT_CFG_OPT(s_opts_t, k, t, f, d, lo, hi, ch, req, rel, h)

/* CURVE flags go together: one key pair serves both sides (a client of the publisher, a
 * server of the relay's subscribers). Without CURVE every endpoint must stay on this
 * host unless --insecure says otherwise. Sets *mode (rt_security_t). RT_OK or RT_EINVAL
 * (printed). */
static int s_security(const s_opts_t *o, int *mode)
{
    *mode = o->cert ? RT_SECURITY_CURVE : RT_SECURITY_LOOPBACK;
    if ((o->allow || o->admin || o->publisher_key) && !o->cert) {
        fprintf(stderr, "rt-relay: --allow, --admin and --publisher-key need --cert (CURVE)\n");
        return RT_EINVAL;
    }
    if (o->cert && (!o->allow || !o->publisher_key)) {
        fprintf(stderr, "rt-relay: --cert needs --publisher-key (the publisher's certificate) "
                        "and --allow DIR (the certificates that may connect to the relay)\n");
        return RT_EINVAL;
    }
    if (o->cert)
        return RT_OK;
    const char *eps[] = {o->listen, o->pub, o->publisher, o->pub_upstream};
    bool used;
    if (rt_sock_check_plaintext(eps, 4, o->insecure, "rt-relay",
                                "is on or reachable from other hosts: give --cert, "
                                "--publisher-key and --allow (CURVE), or --insecure to relay in "
                                "plaintext",
                                "carries every record in plaintext", &used) != RT_OK)
        return RT_EINVAL;
    if (used)
        *mode = RT_SECURITY_INSECURE;
    return RT_OK;
}

/* Runs the upstream side alone until it learnt the source (a new outbox names none). */
static int s_learn_source(rt_upstream_t *up)
{
    while (!rt_upstream_source(up) && !rt_daemon_stopping()) {
        int rc = rt_upstream_tick(up);
        if (rc != RT_OK)
            return rc;
        zmq_pollitem_t items[RT_UPSTREAM_POLL_MAX];
        int n = rt_upstream_poll_items(up, items);
        if (zmq_poll(items, n, rt_upstream_timeout(up)) < 0 && errno != EINTR) {
            rt_error("poll failed: %s", zmq_strerror(errno));
            return RT_EIO;
        }
        if ((rc = rt_upstream_handle(up, items, n)) != RT_OK)
            return rc;
    }
    return RT_OK;
}

int main(int argc, char **argv)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "relay");
    host[sizeof host - 1] = '\0';
    const rt_cfg_param_t params[] = {
        OPT("publisher", RT_CFG_STR, publisher, NULL, 0, 0, NULL, true, false,
            "the ROUTER endpoint of the publisher (or relay) to follow, e.g. "
            "tcp://10.0.0.1:7470"),
        OPT("outbox", RT_CFG_STR, outbox, NULL, 0, 0, NULL, true, false,
            "directory of the relay's LMDB outbox"),
        OPT("name", RT_CFG_STR, name, host, 0, 0, NULL, false, false,
            "the relay's subscriber name at the publisher"),
        OPT("listen", RT_CFG_STR, listen, "tcp://127.0.0.1:7470", 0, 0, NULL, false, false,
            "ROUTER endpoint for the relay's subscribers: hello, fetch, ack, admin"),
        OPT("pub", RT_CFG_STR, pub, "tcp://127.0.0.1:7471", 0, 0, NULL, false, false,
            "PUB endpoint for the relay's subscribers: live records"),
        OPT("publisher-pub", RT_CFG_STR, pub_upstream, NULL, 0, 0, NULL, false, false,
            "the followed publisher's PUB endpoint (default: learnt from it)"),
        OPT("cert", RT_CFG_STR, cert, NULL, 0, 0, NULL, false, false,
            "CURVE: the relay's secret certificate (NAME.cert_secret from rtctl keygen), for "
            "both sides"),
        OPT("publisher-key", RT_CFG_STR, publisher_key, NULL, 0, 0, NULL, false, false,
            "CURVE: the followed publisher's public certificate (NAME.cert): no other is "
            "trusted"),
        OPT("allow", RT_CFG_STR, allow, NULL, 0, 0, NULL, false, false,
            "CURVE: directory of the certificates that may connect to the relay (re-read on "
            "SIGHUP)"),
        OPT("admin", RT_CFG_STR, admin, NULL, 0, 0, NULL, false, false,
            "CURVE: directory of the certificates, also in --allow, that may pause, resume, "
            "forget and replay the relay's subscribers"),
        OPT("insecure", RT_CFG_BOOL, insecure, "false", 0, 0, NULL, false, false,
            "relay in plaintext over endpoints other hosts reach"),
        RT_HTTP_CFG_OPTS(s_opts_t, "file holding the token that POST /api/pause and /api/resume "
                                   "need (Authorization: Bearer); without it they are off"),
        OPT("config", RT_CFG_STR, config, NULL, 0, 0, NULL, false, false,
            "INI file with these keys"),
        OPT("log-level", RT_CFG_ENUM, log_level, "info", 0, 0, rt_daemon_log_levels, false, true,
            "lowest level logged"),
        OPT("batch-bytes", RT_CFG_INT, batch_bytes, "8388608", 65536, 1LL << 30, NULL, false, false,
            "group commit: most bytes stored in one outbox write"),
        OPT("max-outbox-mb", RT_CFG_INT, max_outbox_mb, "0", 0, 1LL << 30, NULL, false, false,
            "outbox size limit in MiB; past it the relay takes nothing more from the publisher "
            "(0: none)"),
        OPT("retention-seconds", RT_CFG_INT, retention_seconds, "3600", 0, 1LL << 40, NULL, false,
            true, "keep acknowledged records this long, for rtctl replay"),
        OPT("pub-hwm", RT_CFG_INT, pub_hwm, "1024", 1, 10000000, NULL, false, false,
            "PUB high-water mark in messages; past it live records are dropped and fetched"),
    };
    const size_t nparams = sizeof params / sizeof params[0];
    s_opts_t o = {0};
    int rc = rt_config_load(params, nparams, &o, argc, argv, "rt-relay",
                            "Follows an rt publisher like a subscriber, keeps its records in an "
                            "outbox of its own, and serves them to subscribers of its own.");
    if (rc == 1)
        return RT_EXIT_OK;
    if (rc < 0)
        return RT_EXIT_USAGE;
    int code = RT_EXIT_FAILURE;
    rt_outbox_t *outbox = NULL;
    rt_upstream_t *up = NULL;
    rt_stream_t *stream = NULL;
    zcert_t *cert = NULL;
    rt_auth_t *auth = NULL;
    rt_http_t *http = NULL;
    rt_http_tls_t tls = {0};
    char publisher_key[RT_CURVE_KEY_LEN] = "";

    if (!rt_name_ok(o.name)) {
        fprintf(stderr,
                "rt-relay: --name: '%s' is not a usable subscriber name "
                "(1 to 63 of A-Z a-z 0-9 _ . -, not starting with . or -)\n",
                o.name);
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    rt_daemon_init("rt-relay", o.log_level);
    int security;
    if (s_security(&o, &security) != RT_OK ||
        (o.http && rt_http_tls_load(&tls, o.http_cert, o.http_key) != RT_OK) ||
        (o.cert &&
         rt_curve_load_client(o.cert, o.publisher_key, o.name, &cert, publisher_key) != RT_OK)) {
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    if (cert && !(auth = rt_auth_new(o.allow, o.admin)))
        goto cleanup;
    rt_outbox_opts_t oo = {.map_size = 0, .max_bytes = (uint64_t)o.max_outbox_mb << 20};
    if (!(outbox = rt_outbox_open(o.outbox, &oo)))
        goto cleanup;
    uint64_t batch_bytes = (uint64_t)o.batch_bytes;
    if (oo.max_bytes > 0 && batch_bytes > oo.max_bytes / 4)
        batch_bytes = oo.max_bytes / 4; /* one batch fits an outbox emptied by trimming */
    rt_upstream_opts_t uo = {.publisher = o.publisher,
                             .pub = o.pub_upstream,
                             .name = o.name,
                             .cert = cert,
                             .publisher_key = cert ? publisher_key : NULL,
                             .batch_bytes = batch_bytes};
    if (!(up = rt_upstream_new(&uo, outbox)))
        goto cleanup;
    if (!rt_upstream_source(up))
        rt_info("a new outbox: asking the publisher at %s which source it serves", o.publisher);
    if ((rc = s_learn_source(up)) != RT_OK) {
        code = rt_daemon_exit_code(rc);
        goto cleanup;
    }
    if (rt_daemon_stopping()) {
        code = RT_EXIT_OK;
        goto cleanup;
    }
    rt_stream_opts_t so = {.source = rt_upstream_source(up),
                           .slot = "",
                           .listen = o.listen,
                           .pub = o.pub,
                           .retention_s = o.retention_seconds,
                           .pub_hwm = o.pub_hwm,
                           .cert = cert,
                           .auth = auth,
                           .security = security,
                           .outbox_limit = oo.max_bytes};
    if (!(stream = rt_stream_new(&so, outbox, NULL)))
        goto cleanup;
    rt_upstream_attach(up, stream);
    rt_stream_set_upstream(stream, rt_upstream_status, up);
    if (o.http && !(http = rt_publisher_web_new(o.http, &tls, stream, NULL)))
        goto cleanup;
    rt_http_tls_clear(&tls);
    if (http && o.http_token && rt_http_set_token_file(http, o.http_token) != RT_OK) {
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    rt_daemon_ready("relaying source %s from %s as %s, listening on %s, publishing on %s, %s, "
                    "outbox head seq %llu",
                    rt_upstream_source(up), o.publisher, o.name, o.listen, o.pub,
                    auth                               ? "CURVE"
                    : security == RT_SECURITY_INSECURE ? "INSECURE plaintext"
                                                       : "plaintext",
                    (unsigned long long)rt_outbox_position(outbox).head_seq);

    rc = RT_OK;
    while (!rt_daemon_stopping()) {
        if (rt_daemon_sighup()) {
            if (o.config && rt_daemon_reload(params, nparams, &o, o.config, &o.log_level))
                rt_stream_set_retention(stream, o.retention_seconds);
            if (auth && rt_auth_reload(auth) == RT_OK)
                rt_info("reloaded the certificates: %zu allowed, %zu admin", rt_auth_allowed(auth),
                        rt_auth_admins(auth));
        }
        if ((rc = rt_upstream_tick(up)) != RT_OK)
            break;
        zmq_pollitem_t items[RT_UPSTREAM_POLL_MAX + 2];
        int n = rt_upstream_poll_items(up, items);
        items[n] = (zmq_pollitem_t){.socket = rt_stream_router(stream), .events = ZMQ_POLLIN};
        items[n + 1] = (zmq_pollitem_t){.fd = http ? rt_http_fd(http) : -1, .events = ZMQ_POLLIN};
        if (zmq_poll(items, http ? n + 2 : n + 1, rt_upstream_timeout(up)) < 0 && errno != EINTR) {
            rt_error("poll failed: %s", zmq_strerror(errno));
            rc = RT_EIO;
            break;
        }
        if (rt_daemon_stopping())
            break;
        if ((rc = rt_upstream_handle(up, items, n)) != RT_OK)
            break;
        if (rt_stream_tick(stream) < 0 ||
            ((items[n].revents & ZMQ_POLLIN) && rt_stream_handle(stream) < 0)) {
            rc = RT_EIO;
            break;
        }
        if (http && (items[n + 1].revents & ZMQ_POLLIN))
            (void)rt_http_serve(http);
    }
    if (rc == RT_OK)
        rt_info("stopping on signal");
    code = rt_daemon_exit_code(rc);
cleanup:
    rt_http_tls_clear(&tls);
    rt_http_destroy(&http);
    rt_upstream_destroy(&up);
    rt_stream_destroy(&stream);
    rt_auth_destroy(&auth);
    zcert_destroy(&cert);
    rt_outbox_destroy(&outbox);
    rt_config_free(params, nparams, &o);
    return code;
}
