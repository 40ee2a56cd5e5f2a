/* tests/tools/rt_copyclient.c - the subscriber's side of an initial copy, without a
 * replica: asks a publisher for a snapshot and copies its tables into files (for tests).
 *
 * Usage: rt_copyclient [options] ENDPOINT
 *   --name NAME       subscriber name (default copytest); routing ids NAME/sync, NAME/copy<k>
 *   --seq N           the start seq SYNC sends (default 0: a new copy)
 *   --jobs N          tables copied at once, each by a DEALER of its own (default 2)
 *   --credit N        frames granted when a table starts (default 8); one more per frame
 *   --binary          COPY in binary format
 *   --flags N         send these COPY flags instead (to test the refusal of unknown ones)
 *   --out DIR         write table I's bytes to DIR/I.copy (default: count them only)
 *   --tables LIST     copy only these table indexes, comma-separated (may be out of range)
 *   --sync-id N       send the COPYs for session N instead of the one SYNC_READY named
 *   --hold SECONDS    before SYNC_END, keep the session (SYNC_KEEP every second) this long
 *   --no-end          never send SYNC_END: leave the session to its timeout
 *   --timeout MS      give up when nothing comes for this long (default 60000)
 *   --cert SECRET --server-key CERT   speak CURVE
 *
 * Prints, on stdout:
 *   ready sync_id=N seq=S lsn=X/Y snapshot=NAME tables=T
 *   table I SCHEMA.TABLE relkind=K bytes=B cols=NAME:TYPE:OID,...
 *   done I rows=N bytes=B frames=F
 *   error I|sync CODE TEXT
 * Exits 0 when every table was copied, 1 when an ERROR came, 2 on bad usage or a timeout. */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curve.h"
#include "sock.h"
#include "wire.h"

#define MAX_JOBS 16

typedef struct {
    zsock_t *sock;   /* DEALER NAME/copy<k> */
    long table;      /* the table it copies, -1 when idle */
    FILE *out;       /* its file, or NULL */
    uint64_t bytes;  /* received for the table */
    uint64_t frames; /* received for the table */
} s_job_t;

typedef struct {
    const char *endpoint, *name, *out_dir, *tables_arg;
    uint64_t seq, jobs, credit, sync_id_override, flags;
    bool binary, no_end, have_sync_id, have_flags;
    int64_t hold_ms, timeout_ms;
    zcert_t *cert;
    char server_key[RT_CURVE_KEY_LEN];
    bool curve;
} s_opts_t;

static zsock_t *s_dealer(const s_opts_t *o, const char *suffix)
{
    char id[128];
    snprintf(id, sizeof id, "%s/%s", o->name, suffix);
    rt_sock_opts_t so = {.type = ZMQ_DEALER,
                         .endpoint = o->endpoint,
                         .what = "DEALER",
                         .routing_id = id,
                         .cert = o->cert,
                         .server_key = o->curve ? o->server_key : NULL};
    return rt_sock_new(&so);
}

static int s_send(zsock_t *sock, const rt_msg_t *m)
{
    void *frame;
    size_t len;
    if (rt_msg_encode(m, &frame, &len) < 0)
        return -1;
    int rc = zmq_send(zsock_resolve(sock), frame, len, 0) < 0 ? -1 : 0;
    free(frame);
    return rc;
}

/* Receives one message from sock into m; -1 when it does not decode. */
static int s_recv(zsock_t *sock, rt_msg_t *m)
{
    zframe_t *f = zframe_recv(sock);
    if (!f)
        return -1;
    int rc = rt_msg_decode(zframe_data(f), zframe_size(f), m);
    zframe_destroy(&f);
    return rc < 0 ? -1 : 0;
}

static void s_print_ready(const rt_msg_t *m)
{
    char lsn[32];
    printf("ready sync_id=%llu seq=%llu lsn=%s snapshot=%s tables=%zu\n",
           (unsigned long long)m->sync_id, (unsigned long long)m->seq,
           rt_lsn_format(m->lsn, lsn, sizeof lsn), m->text, m->ntables);
    for (size_t i = 0; i < m->ntables; i++) {
        const rt_sync_table_t *t = &m->tables[i];
        printf("table %zu %s.%s relkind=%c bytes=%llu cols=", i, t->schema, t->table, t->relkind,
               (unsigned long long)t->bytes);
        for (uint32_t j = 0; j < t->ncols; j++)
            printf("%s%s:%s:%u", j ? "," : "", t->cols[j].name, t->cols[j].type, t->cols[j].typoid);
        printf("\n");
    }
    fflush(stdout);
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    *o = (s_opts_t){.name = "copytest", .jobs = 2, .credit = 8, .timeout_ms = 60000};
    for (int a = 1; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(argv[a], "--binary") == 0)
            o->binary = true;
        else if (strcmp(argv[a], "--no-end") == 0)
            o->no_end = true;
        else if (argv[a][0] != '-')
            o->endpoint = argv[a];
        else if (!v)
            return -1;
        else if (strcmp(argv[a], "--name") == 0)
            o->name = argv[++a];
        else if (strcmp(argv[a], "--seq") == 0)
            o->seq = strtoull(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--jobs") == 0)
            o->jobs = strtoull(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--credit") == 0)
            o->credit = strtoull(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--out") == 0)
            o->out_dir = argv[++a];
        else if (strcmp(argv[a], "--tables") == 0)
            o->tables_arg = argv[++a];
        else if (strcmp(argv[a], "--flags") == 0) {
            o->flags = strtoull(argv[++a], NULL, 0);
            o->have_flags = true;
        } else if (strcmp(argv[a], "--sync-id") == 0) {
            o->sync_id_override = strtoull(argv[++a], NULL, 10);
            o->have_sync_id = true;
        } else if (strcmp(argv[a], "--hold") == 0)
            o->hold_ms = strtoll(argv[++a], NULL, 10) * 1000;
        else if (strcmp(argv[a], "--timeout") == 0)
            o->timeout_ms = strtoll(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--cert") == 0) {
            if (!(o->cert = rt_curve_load_secret(argv[++a])))
                return -1;
        } else if (strcmp(argv[a], "--server-key") == 0) {
            if (rt_curve_load_public(argv[++a], o->server_key) != RT_OK)
                return -1;
            o->curve = true;
        } else
            return -1;
    }
    if (!o->have_flags)
        o->flags = o->binary ? RT_COPY_BINARY : 0;
    if (!o->endpoint || o->jobs < 1 || o->jobs > MAX_JOBS || (o->cert != NULL) != o->curve)
        return -1;
    return 0;
}

/* The table indexes to copy, in order: --tables, or 0..ntables-1. */
static size_t s_todo(const s_opts_t *o, size_t ntables, long **todo)
{
    size_t n = 0, cap = ntables + 64;
    *todo = calloc(cap, sizeof **todo);
    if (!o->tables_arg) {
        for (size_t i = 0; i < ntables; i++)
            (*todo)[n++] = (long)i;
        return n;
    }
    for (const char *p = o->tables_arg; *p && n < cap;) {
        char *end;
        (*todo)[n++] = strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end + strlen(end);
    }
    return n;
}

/* Starts table `table` on job j: COPY with the initial credit. */
static int s_start(const s_opts_t *o, s_job_t *j, uint64_t sync_id, long table)
{
    j->table = table;
    j->bytes = j->frames = 0;
    if (o->out_dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%ld.copy", o->out_dir, table);
        if (!(j->out = fopen(path, "wb"))) {
            perror(path);
            return -1;
        }
    }
    rt_msg_t c = {.type = RT_MSG_COPY,
                  .name = (char *)o->name,
                  .sync_id = sync_id,
                  .table = (uint64_t)table,
                  .count = o->credit,
                  .flags = o->flags};
    return s_send(j->sock, &c);
}

static void s_finish(s_job_t *j)
{
    if (j->out)
        fclose(j->out);
    j->out = NULL;
    j->table = -1;
}

/* One message for job j. Returns 1 when its table ended, -1 on an ERROR, 0 otherwise. */
static int s_on_job_msg(const s_opts_t *o, s_job_t *j, uint64_t sync_id, const rt_msg_t *m)
{
    if (m->type == RT_MSG_COPY_DATA && (long)m->table == j->table) {
        if (j->out && fwrite(m->data, 1, m->datalen, j->out) != m->datalen)
            return -1;
        j->bytes += m->datalen;
        j->frames++;
        rt_msg_t c = {.type = RT_MSG_COPY,
                      .name = (char *)o->name,
                      .sync_id = sync_id,
                      .table = (uint64_t)j->table,
                      .count = 1,
                      .flags = o->flags};
        (void)s_send(j->sock, &c);
        return 0;
    }
    if (m->type == RT_MSG_COPY_DONE && (long)m->table == j->table) {
        printf("done %ld rows=%llu bytes=%llu frames=%llu\n", j->table,
               (unsigned long long)m->count, (unsigned long long)j->bytes,
               (unsigned long long)j->frames);
        fflush(stdout);
        s_finish(j);
        return 1;
    }
    if (m->type == RT_MSG_ERROR) {
        printf("error %ld %lld %s\n", j->table, (long long)m->code, m->text);
        fflush(stdout);
        s_finish(j);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o;
    if (s_parse(argc, argv, &o) < 0) {
        fprintf(stderr,
                "usage: rt_copyclient [--name NAME] [--seq N] [--jobs N] [--credit N] "
                "[--binary] [--flags N] [--out DIR] [--tables LIST] [--sync-id N] [--hold SECONDS] "
                "[--no-end] [--timeout MS] [--cert SECRET --server-key CERT] ENDPOINT\n");
        return 2;
    }
    zsys_init();
    zsys_set_linger(0);
    int rc = 2;
    s_job_t jobs[MAX_JOBS] = {0};
    long *todo = NULL;
    rt_msg_t ready = {0};
    zsock_t *sync = s_dealer(&o, "sync");
    if (!sync)
        goto cleanup;
    for (uint64_t k = 0; k < o.jobs; k++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "copy%llu", (unsigned long long)k);
        jobs[k].table = -1;
        if (!(jobs[k].sock = s_dealer(&o, suffix)))
            goto cleanup;
    }
    rt_msg_t s = {.type = RT_MSG_SYNC, .name = (char *)o.name, .seq = o.seq, .count = o.jobs};
    if (s_send(sync, &s) < 0)
        goto cleanup;
    zsock_set_rcvtimeo(sync, (int)o.timeout_ms);
    if (s_recv(sync, &ready) < 0) {
        fprintf(stderr, "rt_copyclient: no answer to SYNC\n");
        goto cleanup;
    }
    if (ready.type == RT_MSG_ERROR) {
        printf("error sync %lld %s\n", (long long)ready.code, ready.text);
        rc = 1;
        goto cleanup;
    }
    if (ready.type != RT_MSG_SYNC_READY) {
        fprintf(stderr, "rt_copyclient: SYNC answered %s\n", rt_msg_type_name(ready.type));
        goto cleanup;
    }
    s_print_ready(&ready);
    uint64_t sync_id = o.have_sync_id ? o.sync_id_override : ready.sync_id;
    size_t ntodo = s_todo(&o, ready.ntables, &todo), next = 0;
    size_t active = 0;
    bool failed = false;
    int64_t last_keep = zclock_mono(), last_heard = zclock_mono();
    int64_t hold_until = 0;
    zpoller_t *poller = zpoller_new(sync, NULL);
    for (uint64_t k = 0; k < o.jobs; k++)
        zpoller_add(poller, jobs[k].sock);
    for (;;) {
        for (uint64_t k = 0; k < o.jobs && next < ntodo; k++)
            if (jobs[k].table < 0) {
                if (s_start(&o, &jobs[k], sync_id, todo[next++]) < 0)
                    goto cleanup;
                active++;
            }
        int64_t now = zclock_mono();
        if (active == 0 && next >= ntodo) {
            if (!hold_until)
                hold_until = now + o.hold_ms;
            if (now >= hold_until)
                break;
        }
        if (now - last_keep >= 1000) {
            rt_msg_t k = {.type = RT_MSG_SYNC_KEEP, .name = (char *)o.name, .sync_id = sync_id};
            (void)s_send(sync, &k);
            last_keep = now;
        }
        if (now - last_heard > o.timeout_ms && active) {
            fprintf(stderr, "rt_copyclient: nothing came for %lld ms\n", (long long)o.timeout_ms);
            zpoller_destroy(&poller);
            goto cleanup;
        }
        zsock_t *which = zpoller_wait(poller, 200);
        if (!which)
            continue;
        last_heard = zclock_mono();
        rt_msg_t m = {0};
        if (s_recv(which, &m) < 0)
            continue;
        if (which == sync) {
            if (m.type == RT_MSG_ERROR) {
                printf("error sync %lld %s\n", (long long)m.code, m.text);
                fflush(stdout);
                failed = true;
            }
        } else {
            for (uint64_t k = 0; k < o.jobs; k++) {
                if (jobs[k].sock != which || jobs[k].table < 0)
                    continue;
                int r = s_on_job_msg(&o, &jobs[k], sync_id, &m);
                if (r != 0)
                    active--;
                if (r < 0)
                    failed = true;
            }
        }
        rt_msg_clear(&m);
    }
    zpoller_destroy(&poller);
    if (!o.no_end) {
        rt_msg_t e = {.type = RT_MSG_SYNC_END, .name = (char *)o.name, .sync_id = sync_id};
        (void)s_send(sync, &e);
        zclock_sleep(200); /* linger 0: let it go out */
    }
    rc = failed ? 1 : 0;
cleanup:
    for (int k = 0; k < MAX_JOBS; k++) {
        s_finish(&jobs[k]);
        zsock_destroy(&jobs[k].sock);
    }
    zsock_destroy(&sync);
    rt_msg_clear(&ready);
    free(todo);
    zcert_destroy(&o.cert);
    return rc;
}
