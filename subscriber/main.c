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
#include "curve.h"
#include "daemon.h"
#include "initcopy.h"
#include "link.h"
#include "log.h"
#include "sock.h"
#include "web.h"

typedef struct {
    char *publisher;
    char *target;
    char *name;
    char *pub;
    char *config;
    char *http;
    char *http_token;
    char *http_cert;
    char *http_key;
    char *cert;
    char *publisher_key;
    bool insecure;
    int64_t log_level;
    int64_t conflict_policy;
    int64_t init;
    int64_t copy_jobs;
    int64_t tombstone_hours;
    bool truncate;
    bool create_tables;
    int64_t ddl;
} s_opts_t;

/* --init: what a replica with no progress for the source starts from. */
enum { S_INIT_NONE, S_INIT_COPY };
static const char *const s_init_words[] = {"none", "copy", NULL};
/* --ddl: in the order of rt_apply_set_ddl's skip flag (apply = 0). */
static const char *const s_ddl_words[] = {"apply", "skip", NULL};

#define OPT(k, t, f, d, ch, req, rel, h) RT_CFG_OPT(s_opts_t, k, t, f, d, 0, 0, ch, req, rel, h)
#define OPTN(k, f, d, lo, hi, h)                                                                   \
    RT_CFG_OPT(s_opts_t, k, RT_CFG_INT, f, d, lo, hi, NULL, false, false, h)

/* What SIGHUP needs: the option table and the running options. */
typedef struct {
    const rt_cfg_param_t *params;
    size_t nparams;
    s_opts_t *opts;
} s_reload_t;

/* A resync of chosen tables, copied on a thread of its own while the apply streams. */
typedef struct {
    zactor_t *actor;            /* NULL: none runs */
    volatile sig_atomic_t stop; /* set to end it early */
    int result;                 /* what it ended with, once s_run returned S_COPIED */
} s_copier_t;

/* s_run's status when the copier ended (its result in s_copier_t). */
#define S_COPIED 1

static void s_copier_stop(s_copier_t *cp)
{
    if (!cp->actor)
        return;
    cp->stop = 1;
    zactor_destroy(&cp->actor);
    cp->stop = 0;
}

/* Starts the copy of the tables rt.sync_tables marks copying; false when out of memory. */
static bool s_copier_start(s_copier_t *cp, const rt_initcopy_opts_t *io)
{
    rt_initcopy_opts_t o = *io;
    o.tables_only = true;
    o.init = o.resync = o.create_tables = false;
    cp->stop = 0;
    return (cp->actor = rt_initcopy_actor_new(&o, &cp->stop)) != NULL;
}

/* The event loop: the link's sockets, the HTTP server (NULL: none), the copier (when one
 * runs) and the signals. Returns once a stop was asked for (RT_OK), the link ends with
 * another status (returned), the copier ended (S_COPIED), or RT_EIO when polling fails
 * (logged). */
static int s_run(rt_link_t *link, rt_apply_t *apply, rt_http_t *http, const s_reload_t *reload,
                 s_copier_t *cp)
{
    int rc = RT_OK;
    s_opts_t *o = reload->opts;
    rt_link_start(link, apply);
    while (!rt_daemon_stopping()) {
        if (rt_daemon_sighup() &&
            rt_daemon_reload(reload->params, reload->nparams, o, o->config, &o->log_level)) {
            rt_apply_set_policy(apply, (int)o->conflict_policy);
            rt_apply_set_ddl(apply, o->ddl == 1);
        }
        if ((rc = rt_link_tick(link)) != RT_OK || rt_daemon_stopping())
            break;
        zmq_pollitem_t items[RT_LINK_POLL_MAX + 2];
        int n = rt_link_poll_items(link, items);
        int nlink = n;
        if (http)
            items[n++] = (zmq_pollitem_t){.fd = rt_http_fd(http), .events = ZMQ_POLLIN};
        int icp = cp->actor ? n : -1;
        if (cp->actor)
            items[n++] =
                (zmq_pollitem_t){.socket = zactor_resolve(cp->actor), .events = ZMQ_POLLIN};
        if (zmq_poll(items, n, rt_link_timeout(link)) < 0) {
            if (errno == EINTR)
                continue;
            rt_error("polling the publisher's sockets failed: %s", zmq_strerror(errno));
            rc = RT_EIO;
            break;
        }
        if (http && (items[nlink].revents & ZMQ_POLLIN))
            (void)rt_http_serve(http);
        if (icp >= 0 && (items[icp].revents & ZMQ_POLLIN)) {
            char *r = zstr_recv(cp->actor);
            cp->result = r ? (int)strtol(r, NULL, 10) : RT_EIO;
            zstr_free(&r);
            s_copier_stop(cp);
            if (cp->result == RT_ENOTFOUND)
                continue; /* nothing to copy: the run goes on undisturbed */
            rc = S_COPIED;
            break;
        }
        if ((rc = rt_link_handle(link, items, nlink)) != RT_OK)
            break;
    }
    int status = rt_link_end(link);
    return status != RT_OK ? status : rc;
}

/* CURVE flags go together; without CURVE the publisher must be on this host unless
 * --insecure says otherwise. RT_OK or RT_EINVAL (printed). */
static int s_security(const s_opts_t *o)
{
    if (!o->cert != !o->publisher_key) {
        fprintf(stderr, "rt-subscriber: --cert and --publisher-key go together (CURVE)\n");
        return RT_EINVAL;
    }
    if (o->cert)
        return RT_OK;
    const char *eps[] = {o->publisher, o->pub};
    bool used;
    return rt_sock_check_plaintext(eps, 2, o->insecure, "rt-subscriber",
                                   "is on another host: give --cert and --publisher-key (CURVE), "
                                   "or --insecure to take records in plaintext from whoever "
                                   "answers there",
                                   "carries records in plaintext from a publisher that is not "
                                   "authenticated",
                                   &used);
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
        RT_HTTP_CFG_OPTS(s_opts_t, "file holding the token that HTTP requests changing state "
                                   "need (Authorization: Bearer)"),
        OPT("cert", RT_CFG_STR, cert, NULL, NULL, false, false,
            "CURVE: this subscriber's secret certificate (NAME.cert_secret from rtctl keygen)"),
        OPT("publisher-key", RT_CFG_STR, publisher_key, NULL, NULL, false, false,
            "CURVE: the publisher's public certificate (NAME.cert): no other publisher is "
            "trusted"),
        OPT("insecure", RT_CFG_BOOL, insecure, "false", NULL, false, false,
            "take records from a publisher on another host without CURVE"),
        OPT("config", RT_CFG_STR, config, NULL, NULL, false, false, "INI file with these keys"),
        OPT("log-level", RT_CFG_ENUM, log_level, "info", rt_daemon_log_levels, false, true,
            "lowest level logged"),
        OPT("conflict-policy", RT_CFG_ENUM, conflict_policy, "error", rt_conflict_policy_words,
            false, true,
            "on an INSERT of an existing key or an UPDATE/DELETE of a missing row: error "
            "(stop applying, retry with back-off), apply_remote (make the replica row the "
            "source's), skip (leave the change out, keep the replica's row), keep_local (the "
            "replica's version wins, also over a change of a row written last by another "
            "origin) or last_write_wins (the later commit wins, ties by node name; deletes "
            "leave tombstones); the last two need track_commit_timestamp = on; each conflict "
            "recorded in rt.conflicts"),
        OPTN("tombstone-hours", tombstone_hours, "168", 1, 876000,
             "with last_write_wins: hours a delete's tombstone is kept (a change delayed "
             "longer than this, e.g. from a node down for longer, no longer meets the delete "
             "it is older than); purged hourly"),
        OPT("init", RT_CFG_ENUM, init, "none", s_init_words, false, false,
            "on the first start for a source (no progress on the replica yet): none (the "
            "replica already holds the source's rows) or copy (copy every published table "
            "through the publisher under one snapshot, then stream what committed after it)"),
        OPTN("copy-jobs", copy_jobs, "4", 1, RT_INITCOPY_MAX_JOBS,
             "with --init copy: tables copied at once (each job has a replica connection, "
             "and the publisher a source connection for it)"),
        OPT("truncate", RT_CFG_BOOL, truncate, "false", NULL, false, false,
            "with --init copy: empty replica tables that hold rows before copying them "
            "(without it such a table is refused, naming it)"),
        OPT("create-tables", RT_CFG_BOOL, create_tables, "false", NULL, false, false,
            "with --init copy: create the tables missing on the replica from the source's "
            "definitions (pg_dump --schema-only, run by the publisher under the copy's "
            "snapshot); their keys and indexes are built after their rows are copied"),
        OPT("ddl", RT_CFG_ENUM, ddl, "apply", s_ddl_words, false, true,
            "schema changes from the source (rt-publisher --ddl on): apply (run each in the "
            "replica transaction, in its place among the rows) or skip (leave them out: "
            "change the replica's schema yourself)"),
    };
    const size_t nparams = sizeof params / sizeof params[0];
    s_opts_t opts = {0};
    rt_apply_t *apply = NULL;
    rt_link_t *link = NULL;
    rt_http_t *http = NULL;
    int code = RT_EXIT_FAILURE;
    zcert_t *cert = NULL;
    char publisher_key[RT_CURVE_KEY_LEN] = "";
    rt_http_tls_t tls = {0};
    rt_initcopy_state_t copy = {0}; /* the initial copy's progress, for --http */

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
    if (!rt_name_ok(opts.name)) {
        fprintf(stderr,
                "rt-subscriber: --name: '%s' is not a usable subscriber name "
                "(1 to 63 of A-Z a-z 0-9 _ . -, not starting with . or -)\n",
                opts.name);
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    rt_daemon_init("rt-subscriber", opts.log_level);
    if (s_security(&opts) != RT_OK) {
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    if ((opts.cert && rt_curve_load_client(opts.cert, opts.publisher_key, opts.name, &cert,
                                           publisher_key) != RT_OK) ||
        (opts.http && rt_http_tls_load(&tls, opts.http_cert, opts.http_key) != RT_OK)) {
        code = RT_EXIT_USAGE;
        goto cleanup;
    }

    apply = rt_apply_new(opts.target, rt_daemon_stop_flag());
    rt_link_opts_t lo = {.publisher = opts.publisher,
                         .pub = opts.pub,
                         .name = opts.name,
                         .target = opts.target,
                         .cert = cert,
                         .publisher_key = cert ? publisher_key : NULL};
    link = rt_link_new(&lo, rt_daemon_stop_flag());
    if (!apply || !link) {
        rt_error("out of memory");
        goto cleanup;
    }
    if (opts.http && !(http = rt_subscriber_web_new(opts.http, &tls, link, apply, &copy)))
        goto cleanup;
    rt_http_tls_clear(&tls);
    if (http && opts.http_token && rt_http_set_token_file(http, opts.http_token) != RT_OK) {
        code = RT_EXIT_USAGE;
        goto cleanup;
    }
    bool resync = false, look = true;
    s_copier_t cp = {0};
    s_reload_t reload = {params, nparams, &opts};
    rt_apply_set_node(apply, opts.name);
    rt_apply_set_tombstone_hours(apply, (int)opts.tombstone_hours);
    rt_apply_set_policy(apply, (int)opts.conflict_policy);
    rt_apply_set_ddl(apply, opts.ddl == 1);
    rt_info("conflict policy %s, DDL from the source: %s",
            rt_conflict_policy_name((int)opts.conflict_policy), s_ddl_words[opts.ddl]);
    for (;;) {
        /* An initial copy, a resync, or the rest of one that did not finish. */
        rt_initcopy_opts_t io = {.publisher = opts.publisher,
                                 .name = opts.name,
                                 .target = opts.target,
                                 .cert = cert,
                                 .publisher_key = cert ? publisher_key : NULL,
                                 .jobs = (int)opts.copy_jobs,
                                 .truncate = opts.truncate,
                                 .create_tables = opts.create_tables,
                                 .init = opts.init == S_INIT_COPY,
                                 .resync = resync,
                                 .stop = rt_daemon_stop_flag(),
                                 .http = http,
                                 .state = &copy};
        rc = rt_initcopy_run(&io);
        if (rc == RT_EAGAIN) {
            rt_info("stopped during the initial copy; it goes on at the next start");
            code = RT_EXIT_OK;
            goto cleanup;
        }
        if (rc != RT_OK) {
            code = rt_daemon_exit_code(rc);
            goto cleanup;
        }
        resync = false;
        /* A resync of chosen tables asked for, or one that did not finish. */
        if (look && !cp.actor && rt_initcopy_tables_pending(&io) && !s_copier_start(&cp, &io)) {
            rc = RT_ENOMEM;
            break;
        }
        look = false;
        rc = s_run(link, apply, http, &reload, &cp);
        if (rc == S_COPIED) {
            if (cp.result == RT_OK) {
                /* Reconnected, the apply replays what it passed for the copied tables. */
                rt_apply_close(apply);
                continue;
            }
            if (rt_daemon_stopping()) {
                rc = RT_OK;
                break;
            }
            rt_error("the resync of chosen tables failed (%s): they are held until the "
                     "subscriber starts again",
                     rt_strerror(cp.result));
            rc = cp.result;
            break;
        }
        if (rc != RT_ERESYNC)
            break;
        /* A resync stops the copier: the next one copies its tables and the new ones. The
         * apply reconnects: it holds the tables marked. A copy of every table advances
         * the replication origin: no session may hold it. */
        s_copier_stop(&cp);
        rt_apply_close(apply);
        char *tables = rt_link_take_resync_tables(link);
        if (!tables) {
            resync = true;
            continue;
        }
        rc = rt_initcopy_mark(&io, tables);
        free(tables);
        if (rc != RT_OK && rc != RT_ENOTFOUND) {
            rt_error("the resync of chosen tables could not be recorded on the replica (%s); "
                     "ask again",
                     rt_strerror(rc));
        }
        look = true;
    }
    s_copier_stop(&cp);
    if (rc == RT_OK)
        rt_info("stopped");
    else if (rc != RT_ETRIMMED && rc != RT_EINVAL)
        rt_error("stopping: %s", rt_strerror(rc));
    code = rt_daemon_exit_code(rc);
cleanup:
    rt_http_tls_clear(&tls);
    rt_http_destroy(&http);
    rt_link_destroy(&link);
    rt_apply_destroy(&apply);
    zcert_destroy(&cert);
    rt_config_free(params, nparams, &opts);
    return code;
}
