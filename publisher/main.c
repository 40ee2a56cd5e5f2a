/* publisher/main.c - rt-publisher: flags, wiring, the event loop and exit codes. */
#include <czmq.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "config.h"
#include "curve.h"
#include "daemon.h"
#include "log.h"
#include "outbox.h"
#include "slot_stats.h"
#include "sock.h"
#include "stream.h"
#include "sync.h"
#include "web.h"

typedef struct {
    char *source;
    char *outbox;
    char *name;
    char *listen;
    char *pub;
    char *publication;
    char *slot;
    char *config;
    char *http;
    char *http_token;
    char *http_cert;
    char *http_key;
    char *cert;
    char *allow;
    char *admin;
    bool insecure;
    int64_t log_level;
    int64_t batch_bytes;
    int64_t max_outbox_mb;
    int64_t retention_seconds;
    int64_t pub_hwm;
    int64_t sync_timeout_seconds;
    int64_t copy_part_mb;
    char *pg_dump;
    int64_t ddl;
} s_opts_t;

static const char *const s_ddl_modes[] = {"on", "off", NULL};

#define OPT(k, t, f, d, lo, hi, ch, req, rel, h)                                                   \
    RT_CFG_OPT(s_opts_t, k, t, f, d, lo, hi, ch, req, rel, h)
static const rt_cfg_param_t s_params[] = {
    OPT("source", RT_CFG_STR, source, NULL, 0, 0, NULL, true, false,
        "source PostgreSQL connection string (wal_level=logical, a REPLICATION role)"),
    OPT("outbox", RT_CFG_STR, outbox, NULL, 0, 0, NULL, true, false,
        "directory of the LMDB outbox"),
    OPT("name", RT_CFG_STR, name, NULL, 0, 0, NULL, false, false,
        "source name (default: the source database name)"),
    OPT("listen", RT_CFG_STR, listen, "tcp://127.0.0.1:7470", 0, 0, NULL, false, false,
        "ROUTER endpoint: hello, fetch, ack, admin"),
    OPT("pub", RT_CFG_STR, pub, "tcp://127.0.0.1:7471", 0, 0, NULL, false, false,
        "PUB endpoint: live records"),
    OPT("publication", RT_CFG_STR, publication, NULL, 0, 0, NULL, false, false,
        "publication to stream (default rt_<name>, created FOR ALL TABLES if missing)"),
    OPT("slot", RT_CFG_STR, slot, NULL, 0, 0, NULL, false, false,
        "logical replication slot (default rt_<name>, created if missing)"),
    RT_HTTP_CFG_OPTS(s_opts_t, "file holding the token that POST /api/pause and /api/resume "
                               "need (Authorization: Bearer); without it they are off"),
    OPT("cert", RT_CFG_STR, cert, NULL, 0, 0, NULL, false, false,
        "CURVE: the publisher's secret certificate (NAME.cert_secret from rtctl keygen)"),
    OPT("allow", RT_CFG_STR, allow, NULL, 0, 0, NULL, false, false,
        "CURVE: directory of the certificates that may connect (re-read on SIGHUP)"),
    OPT("admin", RT_CFG_STR, admin, NULL, 0, 0, NULL, false, false,
        "CURVE: directory of the certificates, also in --allow, that may pause, resume, "
        "forget and replay"),
    OPT("insecure", RT_CFG_BOOL, insecure, "false", 0, 0, NULL, false, false,
        "serve a non-loopback endpoint without CURVE: anyone who reaches it reads and "
        "controls everything"),
    OPT("config", RT_CFG_STR, config, NULL, 0, 0, NULL, false, false, "INI file with these keys"),
    OPT("log-level", RT_CFG_ENUM, log_level, "info", 0, 0, rt_daemon_log_levels, false, true,
        "lowest level logged"),
    OPT("batch-bytes", RT_CFG_INT, batch_bytes, "8388608", 65536, 1LL << 30, NULL, false, false,
        "group commit: most bytes stored in one outbox write"),
    OPT("max-outbox-mb", RT_CFG_INT, max_outbox_mb, "0", 0, 1LL << 30, NULL, false, false,
        "outbox size limit in MiB; past it reading from the source pauses (0: none)"),
    OPT("retention-seconds", RT_CFG_INT, retention_seconds, "3600", 0, 1LL << 40, NULL, false, true,
        "keep acknowledged records this long, for rtctl replay"),
    OPT("pub-hwm", RT_CFG_INT, pub_hwm, "1024", 1, 10000000, NULL, false, false,
        "PUB high-water mark in messages; past it live records are dropped and fetched"),
    OPT("sync-timeout-seconds", RT_CFG_INT, sync_timeout_seconds, "30", 1, 86400, NULL, false, true,
        "an initial copy session not heard from this long is dropped, with its temporary "
        "slot"),
    OPT("copy-part-mb", RT_CFG_INT, copy_part_mb, "64", 1, 1LL << 20, NULL, false, false,
        "an initial copy offers a table larger than this in parts of about this size (ranges "
        "of its pages), at most one per copy job of the subscriber, copied in parallel"),
    OPT("pg-dump", RT_CFG_STR, pg_dump, NULL, 0, 0, NULL, false, false,
        "the pg_dump that prints table definitions for subscribers started with "
        "--create-tables, of the source's major version or newer (default: "
        "/usr/lib/postgresql/<version>/bin/pg_dump, else pg_dump on PATH)"),
    OPT("ddl", RT_CFG_ENUM, ddl, "on", 0, 0, s_ddl_modes, false, false,
        "on: capture DDL (event triggers on the source, installed by a superuser) and send it "
        "in order with the rows; off: rows only"),
};
#define NPARAMS (sizeof s_params / sizeof s_params[0])

/* CURVE flags go together; without CURVE every endpoint must stay on this host unless
 * --insecure says otherwise. Sets *mode (rt_security_t). RT_OK or RT_EINVAL (printed). */
static int s_security(const s_opts_t *o, int *mode)
{
    *mode = o->cert ? RT_SECURITY_CURVE : RT_SECURITY_LOOPBACK;
    if ((o->allow || o->admin) && !o->cert) {
        fprintf(stderr, "rt-publisher: --allow and --admin need --cert (CURVE)\n");
        return RT_EINVAL;
    }
    if (o->cert && !o->allow) {
        fprintf(stderr, "rt-publisher: --cert needs --allow DIR: the certificates that may "
                        "connect\n");
        return RT_EINVAL;
    }
    if (o->cert)
        return RT_OK;
    const char *eps[] = {o->listen, o->pub};
    bool used;
    if (rt_sock_check_plaintext(eps, 2, o->insecure, "rt-publisher",
                                "is reachable from other hosts: give --cert and --allow (CURVE), "
                                "or --insecure to serve it in plaintext to anyone",
                                "serves every record and every admin verb in plaintext to "
                                "anyone who reaches it",
                                &used) != RT_OK)
        return RT_EINVAL;
    if (used)
        *mode = RT_SECURITY_INSECURE;
    return RT_OK;
}

/* Default name: the database named by the DSN. */
static char *s_default_name(const char *dsn)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &err);
    if (!opts) {
        fprintf(stderr, "rt-publisher: --source: %s", err ? err : "cannot parse\n");
        PQfreemem(err);
        return NULL;
    }
    char *name = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "dbname") == 0 && o->val && o->val[0])
            name = strdup(o->val);
    PQconninfoFree(opts);
    return name ? name : strdup(getenv("PGDATABASE") ? getenv("PGDATABASE") : "postgres");
}

/* A slot or publication name from the source name: lower case, [a-z0-9_]. */
static char *s_object_name(const char *name)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "rt_%s", name);
    if (n >= (int)sizeof buf)
        n = sizeof buf - 1;
    for (int i = 0; i < n; i++) {
        char c = buf[i];
        if (c >= 'A' && c <= 'Z')
            buf[i] = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            buf[i] = '_';
    }
    return strdup(buf);
}

/* rt_capture_publish_fn: each record built goes out on PUB at once, before it is
 * durable (arg: the stream variable, NULL until the stream is made and after it is
 * destroyed). */
static void s_publish_live(void *arg, uint64_t seq, const void *data, size_t len)
{
    rt_stream_t **stream = arg;
    if (*stream)
        rt_stream_publish_live(*stream, seq, data, len);
}

/* rt_capture_stream_fn: a block of a transaction still running, its abort or its
 * commit goes out on PUB (arg as s_publish_live's). */
static void s_publish_stream(void *arg, const rt_msg_t *m)
{
    rt_stream_t **stream = arg;
    if (*stream)
        rt_stream_publish_block(*stream, m);
}

int main(int argc, char **argv)
{
    s_opts_t o;
    memset(&o, 0, sizeof o);
    int rc = rt_config_load(s_params, NPARAMS, &o, argc, argv, "rt-publisher",
                            "Captures a PostgreSQL source into an LMDB outbox and streams it "
                            "to rt-subscribers.");
    if (rc == 1)
        return RT_EXIT_OK;
    if (rc < 0)
        return RT_EXIT_USAGE;
    int exit_code = RT_EXIT_FAILURE;
    rt_outbox_t *outbox = NULL;
    rt_capture_t *capture = NULL;
    rt_stream_t *stream = NULL;
    rt_sync_t *sync = NULL;
    rt_slot_stats_t *slot_stats = NULL;
    rt_http_t *http = NULL;
    zcert_t *cert = NULL;
    rt_auth_t *auth = NULL;
    rt_http_tls_t tls = {0};

    rt_daemon_init("rt-publisher", o.log_level);
    if (!o.name && !(o.name = s_default_name(o.source))) {
        exit_code = RT_EXIT_USAGE;
        goto cleanup;
    }
    if (!o.slot)
        o.slot = s_object_name(o.name);
    if (!o.publication)
        o.publication = s_object_name(o.name);

    int security;
    if (s_security(&o, &security) != RT_OK ||
        (o.http && rt_http_tls_load(&tls, o.http_cert, o.http_key) != RT_OK)) {
        exit_code = RT_EXIT_USAGE;
        goto cleanup;
    }
    if (o.cert &&
        (!(cert = rt_curve_load_secret(o.cert)) || !(auth = rt_auth_new(o.allow, o.admin))))
        goto cleanup;

    rt_outbox_opts_t oo = {.map_size = 0, .max_bytes = (uint64_t)o.max_outbox_mb << 20};
    outbox = rt_outbox_open(o.outbox, &oo);
    if (!outbox)
        goto cleanup;
    char stored[128];
    if (rt_outbox_meta_get(outbox, "source", stored, sizeof stored) == 0) {
        if (strcmp(stored, o.name) != 0) {
            rt_error("outbox %s belongs to source \"%s\", not \"%s\"", o.outbox, stored, o.name);
            exit_code = RT_EXIT_USAGE;
            goto cleanup;
        }
    } else if (rt_outbox_meta_set(outbox, "source", o.name) < 0 ||
               rt_outbox_meta_set(outbox, "slot", o.slot) < 0) {
        goto cleanup;
    }

    /* One batch must fit in an outbox emptied by trimming, or a full outbox never drains
     * (the size check counts each record at its LMDB page size: up to twice its bytes). */
    uint64_t batch_bytes = (uint64_t)o.batch_bytes;
    if (oo.max_bytes > 0 && batch_bytes > oo.max_bytes / 4) {
        batch_bytes = oo.max_bytes / 4;
        rt_info("batch-bytes lowered to %llu, a quarter of max-outbox-mb",
                (unsigned long long)batch_bytes);
    }
    rt_capture_opts_t co = {.dsn = o.source,
                            .name = o.name,
                            .slot = o.slot,
                            .publication = o.publication,
                            .batch_bytes = batch_bytes,
                            .spool_dir = o.outbox,
                            .ddl = o.ddl == 0,
                            .publish = s_publish_live,
                            .publish_arg = &stream,
                            .stream = s_publish_stream};
    capture = rt_capture_new(&co, outbox);
    if (!capture)
        goto cleanup;
    rt_sync_opts_t yo = {.dsn = o.source,
                         .publication = o.publication,
                         .timeout_s = o.sync_timeout_seconds,
                         .part_bytes = (uint64_t)o.copy_part_mb << 20,
                         .pg_dump = o.pg_dump};
    if (!(sync = rt_sync_new(&yo)))
        goto cleanup;
    if (!(slot_stats = rt_slot_stats_new(o.source, o.slot)))
        goto cleanup;
    rt_stream_opts_t so = {.source = o.name,
                           .slot = o.slot,
                           .listen = o.listen,
                           .pub = o.pub,
                           .retention_s = o.retention_seconds,
                           .pub_hwm = o.pub_hwm,
                           .cert = cert,
                           .auth = auth,
                           .security = security,
                           .sync = sync,
                           .slot_stats = slot_stats,
                           .outbox_limit = oo.max_bytes};
    stream = rt_stream_new(&so, outbox, capture);
    if (!stream)
        goto cleanup;
    if (o.http && !(http = rt_publisher_web_new(o.http, &tls, stream, capture)))
        goto cleanup;
    rt_http_tls_clear(&tls);
    if (http && o.http_token && rt_http_set_token_file(http, o.http_token) != RT_OK) {
        exit_code = RT_EXIT_USAGE;
        goto cleanup;
    }

    rt_outbox_pos_t pos = rt_outbox_position(outbox);
    char lsn[32];
    char sockets[96] = "plaintext";
    if (auth)
        snprintf(sockets, sizeof sockets, "CURVE (%zu certificates allowed, %zu admin)",
                 rt_auth_allowed(auth), rt_auth_admins(auth));
    else if (security == RT_SECURITY_INSECURE)
        snprintf(sockets, sizeof sockets, "INSECURE plaintext on the network");
    rt_daemon_ready("source %s slot %s publication %s, listening on %s, publishing on %s, %s, "
                    "outbox head seq %llu at %s",
                    o.name, o.slot, o.publication, o.listen, o.pub, sockets,
                    (unsigned long long)pos.head_seq,
                    rt_lsn_format(pos.last_end_lsn, lsn, sizeof lsn));

    while (!rt_daemon_stopping()) {
        zmq_pollitem_t items[5] = {{rt_stream_router(stream), 0, ZMQ_POLLIN, 0},
                                   {NULL, http ? rt_http_fd(http) : -1, ZMQ_POLLIN, 0},
                                   {rt_sync_socket(sync), 0, ZMQ_POLLIN, 0},
                                   {rt_capture_commit_socket(capture), 0, ZMQ_POLLIN, 0},
                                   {NULL, rt_capture_fd(capture), ZMQ_POLLIN, 0}};
        int nitems = items[4].fd >= 0 ? 5 : 4;
        if (zmq_poll(items, nitems, rt_capture_wait_ms(capture, 100)) < 0 && zmq_errno() != EINTR) {
            rt_error("poll failed: %s", zmq_strerror(zmq_errno()));
            goto cleanup;
        }
        if (rt_daemon_stopping())
            break;
        if (rt_daemon_sighup()) {
            if ((o.config || !auth) &&
                rt_daemon_reload(s_params, NPARAMS, &o, o.config, &o.log_level)) {
                rt_stream_set_retention(stream, o.retention_seconds);
                rt_sync_set_timeout(sync, o.sync_timeout_seconds);
            }
            if (auth && rt_auth_reload(auth) == RT_OK)
                rt_info("reloaded the certificates: %zu allowed, %zu admin", rt_auth_allowed(auth),
                        rt_auth_admins(auth));
        }
        if (rt_capture_pump(capture) < 0)
            goto cleanup;
        rt_slot_stats_pump(slot_stats);
        if (rt_stream_tick(stream) < 0)
            goto cleanup;
        if (items[0].revents & ZMQ_POLLIN && rt_stream_handle(stream) < 0)
            goto cleanup;
        if (items[1].revents & ZMQ_POLLIN)
            (void)rt_http_serve(http);
        rt_sync_pump(sync, rt_stream_router(stream));
    }
    rt_info("stopping on signal");
    exit_code = RT_EXIT_OK;
cleanup:
    rt_http_tls_clear(&tls);
    rt_http_destroy(&http);
    rt_sync_destroy(&sync);
    rt_stream_destroy(&stream);
    rt_slot_stats_destroy(&slot_stats);
    rt_auth_destroy(&auth);
    zcert_destroy(&cert);
    rt_capture_destroy(&capture);
    rt_outbox_destroy(&outbox);
    rt_config_free(s_params, NPARAMS, &o);
    return exit_code;
}
