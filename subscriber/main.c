/* subscriber/main.c - rt-subscriber: flags, wiring, the event loop and exit codes. */
#include <czmq.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "config.h"
#include "conflict.h"
#include "daemon.h"
#include "link.h"
#include "web.h"
#include "log.h"

typedef struct {
    char *publisher;
    char *target;
    char *name;
    char *pub;
    char *config;
    char *http;
    int64_t log_level;
    int64_t conflict_policy;
} s_opts_t;

#define OPT(k, t, f, d, ch, req, rel, h) RT_CFG_OPT(s_opts_t, k, t, f, d, 0, 0, ch, req, rel, h)

/* What SIGHUP needs: the option table and the running options. */
typedef struct {
    const rt_cfg_param_t *params;
    size_t nparams;
    s_opts_t *opts;
} s_reload_t;

/* The event loop: the link's sockets, the HTTP server (NULL: none) and the signals.
 * Returns once a stop was asked for (RT_OK) or the link ends with another status
 * (returned), or RT_EIO when polling fails (logged). */
static int s_run(rt_link_t *link, rt_apply_t *apply, rt_http_t *http, const s_reload_t *reload)
{
    int rc = RT_OK;
    s_opts_t *o = reload->opts;
    rt_link_start(link, apply);
    while (!rt_daemon_stopping()) {
        if (rt_daemon_reload(reload->params, reload->nparams, o, o->config, &o->log_level))
            rt_apply_set_policy(apply, (int)o->conflict_policy);
        if ((rc = rt_link_tick(link)) != RT_OK || rt_daemon_stopping())
            break;
        zmq_pollitem_t items[RT_LINK_POLL_MAX + 1];
        int n = rt_link_poll_items(link, items);
        int nlink = n;
        if (http)
            items[n++] = (zmq_pollitem_t){.fd = rt_http_fd(http), .events = ZMQ_POLLIN};
        if (zmq_poll(items, n, rt_link_timeout(link)) < 0) {
            if (errno == EINTR)
                continue;
            rt_error("polling the publisher's sockets failed: %s", zmq_strerror(errno));
            rc = RT_EIO;
            break;
        }
        if (http && (items[nlink].revents & ZMQ_POLLIN))
            (void)rt_http_serve(http);
        if ((rc = rt_link_handle(link, items, nlink)) != RT_OK)
            break;
    }
    int status = rt_link_end(link);
    return status != RT_OK ? status : rc;
}

/* A routing id and a name in STATUS: 1..127 bytes, printable, not starting with NUL. */
static bool s_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 127)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

int main(int argc, char **argv)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "subscriber");
    host[sizeof host - 1] = '\0';

    const rt_cfg_param_t params[] = {
        OPT("publisher", RT_CFG_STR, publisher, NULL, NULL, true, false,
            "the publisher's ROUTER endpoint, e.g. tcp://127.0.0.1:7470"),
        OPT("target", RT_CFG_STR, target, NULL, NULL, true, false,
            "replica PostgreSQL connection string (superuser or the documented GRANTs)"),
        OPT("name", RT_CFG_STR, name, host, NULL, false, false,
            "subscriber name, unique per publisher (default: the host name)"),
        OPT("pub", RT_CFG_STR, pub, NULL, NULL, false, false,
            "the publisher's PUB endpoint (default: learnt from the publisher)"),
        OPT("http", RT_CFG_STR, http, NULL, NULL, false, false,
            "ADDR:PORT serving /metrics, /api/status and the dashboard (default: none)"),
        OPT("config", RT_CFG_STR, config, NULL, NULL, false, false, "INI file with these keys"),
        OPT("log-level", RT_CFG_ENUM, log_level, "info", rt_daemon_log_levels, false, true,
            "lowest level logged"),
        OPT("conflict-policy", RT_CFG_ENUM, conflict_policy, "error", rt_conflict_policy_words,
            false, true,
            "on an INSERT of an existing key or an UPDATE/DELETE of a missing row: error "
            "(stop applying, retry with back-off) or apply_remote (make the replica row the "
            "source's); either way recorded in rt.conflicts"),
    };
    const size_t nparams = sizeof params / sizeof params[0];
    s_opts_t opts = {0};
    rt_apply_t *apply = NULL;
    rt_link_t *link = NULL;
    rt_http_t *http = NULL;
    int code = RT_EXIT_FAILURE;

    int rc = rt_config_load(params, nparams, &opts, argc, argv, "rt-subscriber",
                            "Applies a publisher's change stream to a replica PostgreSQL, "
                            "exactly once.");
    if (rc == 1) {
        code = RT_EXIT_OK;
        goto cleanup;
    }
    if (rc != RT_OK) {
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    if (!s_name_ok(opts.name)) {
        fprintf(stderr,
                "rt-subscriber: --name: '%s' is not a usable subscriber name "
                "(1 to 127 printable characters, no spaces)\n",
                opts.name);
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    rt_daemon_init("rt-subscriber", opts.log_level);

    apply = rt_apply_new(opts.target, rt_daemon_stop_flag());
    rt_link_opts_t lo = {.publisher = opts.publisher, .pub = opts.pub, .name = opts.name};
    link = rt_link_new(&lo, rt_daemon_stop_flag());
    if (!apply || !link) {
        rt_error("out of memory");
        goto cleanup;
    }
    if (opts.http && !(http = rt_subscriber_web_new(opts.http, link, apply)))
        goto cleanup;
    s_reload_t reload = {params, nparams, &opts};
    rt_apply_set_policy(apply, (int)opts.conflict_policy);
    rt_info("conflict policy %s", rt_conflict_policy_name((int)opts.conflict_policy));
    rc = s_run(link, apply, http, &reload);
    if (rc == RT_OK)
        rt_info("stopped");
    else if (rc != RT_ETRIMMED && rc != RT_EINVAL)
        rt_error("stopping: %s", rt_strerror(rc));
    code = rt_daemon_exit_code(rc);
cleanup:
    rt_http_destroy(&http);
    rt_link_destroy(&link);
    rt_apply_destroy(&apply);
    rt_config_free(params, nparams, &opts);
    return code;
}
