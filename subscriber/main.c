/* subscriber/main.c - rt-subscriber: flags, wiring, signal handling, the event loop and
 * exit codes. */
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "config.h"
#include "conflict.h"
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

static const char *const s_levels[] = {"debug", "info", "warning", "error", NULL};

#define OPT(k, t, f, d, ch, req, h)                                                                \
    {                                                                                              \
        k, t, offsetof(s_opts_t, f), d, 0, 0, ch, req, h                                           \
    }

/* ---- Signals: SIGTERM and SIGINT set s_stop, SIGHUP sets s_reload. */
static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_reload = 0;

static void s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

static void s_signals_init(void)
{
    /* Our own handlers: czmq must not install its own. */
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* What SIGHUP needs: the option table, the running options and the apply side. */
typedef struct {
    const rt_cfg_param_t *params;
    size_t nparams;
    s_opts_t *opts;
    rt_apply_t *apply;
} s_reload_t;

/* SIGHUP: re-reads the config file and applies what can change while running. */
static void s_reload_config(const s_reload_t *r)
{
    if (!r->opts->config) {
        rt_warn("SIGHUP: no --config file to reload");
        return;
    }
    if (rt_config_load_file(r->params, r->nparams, r->opts, r->opts->config) < 0) {
        rt_warn("SIGHUP: %s not reloaded (errors above); running settings kept", r->opts->config);
        return;
    }
    rt_log_init("rt-subscriber", (rt_log_level_t)r->opts->log_level);
    rt_apply_set_policy(r->apply, (int)r->opts->conflict_policy);
    rt_info("reloaded %s: log-level %s, conflict-policy %s (other keys apply at the next start)",
            r->opts->config, s_levels[r->opts->log_level],
            rt_conflict_policy_name((int)r->opts->conflict_policy));
}

/* The event loop: the link's sockets, the HTTP server (NULL: none) and the signal
 * flags. Returns once s_stop is set (RT_OK) or the link ends with another status
 * (returned), or RT_EIO when polling fails (logged). */
static int s_run(rt_link_t *link, rt_apply_t *apply, rt_http_t *http, const s_reload_t *reload)
{
    int rc = RT_OK;
    rt_link_start(link, apply);
    while (!s_stop) {
        if (s_reload) {
            s_reload = 0;
            s_reload_config(reload);
        }
        if ((rc = rt_link_tick(link)) != RT_OK || s_stop)
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
        OPT("publisher", RT_CFG_STR, publisher, NULL, NULL, true,
            "the publisher's ROUTER endpoint, e.g. tcp://127.0.0.1:7470"),
        OPT("target", RT_CFG_STR, target, NULL, NULL, true,
            "replica PostgreSQL connection string (superuser or the documented GRANTs)"),
        OPT("name", RT_CFG_STR, name, host, NULL, false,
            "subscriber name, unique per publisher (default: the host name)"),
        OPT("pub", RT_CFG_STR, pub, NULL, NULL, false,
            "the publisher's PUB endpoint (default: learnt from the publisher)"),
        OPT("http", RT_CFG_STR, http, NULL, NULL, false,
            "ADDR:PORT serving /metrics, /api/status and the dashboard (default: none)"),
        OPT("config", RT_CFG_STR, config, NULL, NULL, false, "INI file with these keys"),
        OPT("log-level", RT_CFG_ENUM, log_level, "info", s_levels, false, "lowest level logged"),
        OPT("conflict-policy", RT_CFG_ENUM, conflict_policy, "error", rt_conflict_policy_words,
            false,
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
    rt_log_init("rt-subscriber", (rt_log_level_t)opts.log_level);

    s_signals_init();

    apply = rt_apply_new(opts.target, &s_stop);
    rt_link_opts_t lo = {.publisher = opts.publisher, .pub = opts.pub, .name = opts.name};
    link = rt_link_new(&lo, &s_stop);
    if (!apply || !link) {
        rt_error("out of memory");
        goto cleanup;
    }
    if (opts.http && !(http = rt_subscriber_web_new(opts.http, link, apply)))
        goto cleanup;
    s_reload_t reload = {params, nparams, &opts, apply};
    rt_apply_set_policy(apply, (int)opts.conflict_policy);
    rt_info("conflict policy %s", rt_conflict_policy_name((int)opts.conflict_policy));
    rc = s_run(link, apply, http, &reload);
    if (rc == RT_OK) {
        rt_info("stopped");
        code = RT_EXIT_OK;
    } else if (rc == RT_ETRIMMED) {
        code = RT_EXIT_RESYNC;
    } else if (rc == RT_EINVAL) {
        code = RT_EXIT_USAGE;
    } else {
        rt_error("stopping: %s", rt_strerror(rc));
        code = RT_EXIT_FAILURE;
    }
cleanup:
    rt_http_destroy(&http);
    rt_link_destroy(&link);
    rt_apply_destroy(&apply);
    rt_config_free(params, nparams, &opts);
    return code;
}
